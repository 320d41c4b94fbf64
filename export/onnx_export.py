"""PyTorch -> ONNX through mmdeploy's exporter, and the graph's checks."""
from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Dict, Tuple

import torch

from detection.preprocess import Prepared

from . import shims
from .errors import ExportError

STANDARD_DOMAINS = ('', 'ai.onnx')
TRACE_BACKEND = 'onnxruntime'  # its rewriters emit standard ops only


def load_deploy_config(path: Path):
    from mmengine.config import Config
    return Config.fromfile(str(path))


def export(model: torch.nn.Module, deploy_cfg, sample: Prepared,
           out_prefix: Path) -> Path:
    """Trace ``model`` on one preprocessed image with mmdeploy's rewriters
    (and the project's, which restore mmdet's semantics) active.

    Always with the rewriters of mmdeploy's ``onnxruntime`` backend, whatever
    backend the deploy config names: those of its ``tensorrt`` backend emit
    mmdeploy's own plugins (``MMCVMultiLevelRoiAlign``, ``TRTBatchedNMS``),
    which neither NVIDIA's Triton nor ONNX Runtime carries. The standard
    ``RoiAlign`` and ``NonMaxSuppression`` are what TensorRT's ONNX parser
    reads (as its ``ROIAlign_TRT`` plugin and its NMS layer); the deploy
    config's other settings (shapes, the engine's profile) still apply."""
    shims.apply()
    from mmdeploy.apis.onnx import export as mmdeploy_export
    from mmdeploy.codebase import import_codebase
    from mmdeploy.utils import Codebase, get_backend
    from mmdet.structures import DetDataSample

    import_codebase(Codebase.MMDET)  # mmdeploy's own mmdet rewriters
    from . import rewriters  # noqa: F401  ours, registered on import

    h, w = sample.tensor.shape[1:]
    data_samples = [DetDataSample(metainfo=dict(
        img_shape=sample.img_shape, pad_shape=(h, w),
        ori_shape=sample.ori_shape, scale_factor=sample.scale_factor,
        batch_input_shape=(h, w)))]
    deploy_cfg = copy.deepcopy(deploy_cfg)  # the caller keeps its own
    deploy_cfg.backend_config = dict(type=TRACE_BACKEND)
    onnx_cfg = deploy_cfg.onnx_config
    inputs = (torch.from_numpy(sample.tensor[None]),
              torch.tensor([sample.img_shape], dtype=torch.float32))
    try:
        mmdeploy_export(
            model, inputs, str(out_prefix),
            backend=get_backend(deploy_cfg).value,
            input_metas={'data_samples': data_samples, 'mode': 'tensor'},
            context_info={'deploy_cfg': deploy_cfg},
            input_names=list(onnx_cfg.input_names),
            output_names=list(onnx_cfg.output_names),
            opset_version=onnx_cfg.opset_version,
            dynamic_axes=onnx_cfg.dynamic_axes,
            keep_initializers_as_inputs=onnx_cfg.keep_initializers_as_inputs,
            optimize=False)
    except Exception as exc:
        raise ExportError(f'ONNX export failed: {type(exc).__name__}: '
                          f'{str(exc).splitlines()[0] if str(exc) else ""}'
                          ) from exc
    finally:
        # mmdeploy's export leaves the rewritten forward bound on the
        # instance; drop it so the model runs as plain mmdet again.
        model.__dict__.pop('forward', None)
    return out_prefix.with_suffix('.onnx')


def check(onnx_path: Path) -> Counter:
    """``onnx.checker`` plus: only standard-domain ops, so plain ONNX Runtime
    (and Triton's native onnxruntime backend) run it with no plugins."""
    import onnx
    try:
        onnx.checker.check_model(str(onnx_path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f'onnx.checker rejected {onnx_path.name}: '
                          f'{str(exc).splitlines()[0]}') from None
    graph = onnx.load(str(onnx_path)).graph
    custom = sorted({f'{n.domain}::{n.op_type}' for n in graph.node
                     if n.domain not in STANDARD_DOMAINS})
    if custom:
        raise ExportError(f'graph uses non-standard ops {custom}; '
                          'ONNX Runtime would need plugins')
    return Counter(n.op_type for n in graph.node)




def settle_io(onnx_path: Path, largest: int,
              outputs: Dict[str, Tuple[int, ...]], name: str = 'input') -> None:
    """The graph's inputs and outputs as a caller of the detector meets
    them, in place:

    - the image input sliced to at most ``largest`` rows and columns before
      anything reads it: the work and memory one image costs stay within
      those of the largest canvas the preprocessing makes, even for a
      caller who sends the detector a tensor of its own (Triton checks only
      the batch size and channels). Every canvas the preprocessing makes
      fits, so what the ensemble sends is unchanged;
    - each output declared with its dims after the batch's, ``outputs``
      (the detections' rows are max_per_img, what the graph always
      returns), so that the configs, Triton's checks of them against the
      model and a caller all see those sizes, not bounds a runtime derived
      (NGC's openvino backend refuses a config's -1 that lies outside
      one)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    model = onnx.load(str(onnx_path))
    graph = model.graph
    bounded = f'{name}_bounded'
    for node in graph.node:
        node.input[:] = [bounded if i == name else i for i in node.input]
    limits = [numpy_helper.from_array(np.array(values, np.int64),
                                      f'{bounded}_{role}')
              for role, values in (('starts', [0, 0]),
                                   ('ends', [largest, largest]),
                                   ('axes', [2, 3]))]
    graph.initializer.extend(limits)
    graph.node.insert(0, helper.make_node(
        'Slice', [name, *(t.name for t in limits)], [bounded],
        name='bound_input'))
    for output in graph.output:
        for dim, size in zip(output.type.tensor_type.shape.dim[1:],
                             outputs[output.name]):
            dim.Clear()
            dim.dim_value = size
    onnx.save(model, str(onnx_path))
