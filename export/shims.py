"""Compatibility shims that let mmdeploy 1.3.1 export under torch 2.13.

mmdeploy 1.3.1 was written for torch 1.x/2.0. Two things moved since:

* torch >= 2.9 routes ``torch.onnx.export`` to the dynamo exporter, which does
  not run mmdeploy's function rewriters or its ``symbolic`` methods. The
  TorchScript exporter still exists behind ``dynamo=False``.
* ``torch.onnx.symbolic_opset9._cast_Long`` was removed; mmdeploy's RoIAlign
  symbolic still imports it.

``apply()`` is idempotent and must run before mmdeploy is imported.
"""
from __future__ import annotations

import functools

import importlib

import torch
import torch.onnx

_ONNX_INT64 = 7  # TensorProto.INT64


def _cast_long(g, input, non_blocking):  # noqa: A002 - torch's own signature
    return g.op('Cast', input, to_i=_ONNX_INT64)


def apply() -> None:
    """Install both shims once."""
    # ``torch.onnx.symbolic_opset9`` is now a re-export of a private module;
    # mmdeploy imports from the public name, so the shim goes there.
    symbolic_opset9 = importlib.import_module('torch.onnx.symbolic_opset9')
    if not hasattr(symbolic_opset9, '_cast_Long'):
        symbolic_opset9._cast_Long = _cast_long
    export = torch.onnx.export
    if getattr(export, '_torchscript_shim', False):
        return

    @functools.wraps(export)
    def torchscript_export(*args, **kwargs):
        kwargs.setdefault('dynamo', False)
        return export(*args, **kwargs)

    torchscript_export._torchscript_shim = True
    torch.onnx.export = torchscript_export
