"""The fp16 graph: the traced fp32 graph through ONNX Runtime's float16
converter, with the deploy config's common_config (mmdeploy's
onnxruntime-fp16 settings).

mmdeploy converts with onnxconverter-common's copy of the same converter;
its 1.16 release leaves this graph's Mul nodes with one fp32 and one fp16
input, which neither onnx's checker nor ONNX Runtime loads. ONNX Runtime's
own copy gets the types right; its graph-input casts are appended after
the nodes that read them, so the graph is sorted again for the checker.

Weights and activations halve; inputs and outputs stay fp32
(``keep_io_types``), so the served wire and the pre/post models are those of
fp32. The ops on the converter's block list (RoiAlign, NonMaxSuppression,
TopK, Range, Min, Max...) have no fp16 kernels in ONNX Runtime and stay
fp32 with casts around them. Boxes move by a fraction of a pixel and scores
by ~1e-3, so the graph is judged by mAP (``accuracy.check``), not parity.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import onnx
from onnxruntime.transformers.float16 import (DEFAULT_OP_BLOCK_LIST,
                                              convert_float_to_float16)
from onnxruntime.transformers.onnx_model import OnnxModel


def convert(fp32: Path, settings: dict, target: Path) -> Tuple[Path, List[str]]:
    """``target``, the fp16 graph, and the op types left in fp32;
    ``settings``: the deploy config's ``backend_config.common_config``."""
    graph = OnnxModel(convert_float_to_float16(onnx.load(str(fp32)), **settings))
    graph.topological_sort()
    del graph.model.graph.value_info[:]  # the traced fp32 types; inferred anew
    onnx.save(graph.model, str(target))
    blocked = settings.get('op_block_list') or DEFAULT_OP_BLOCK_LIST
    ops = {node.op_type for node in graph.model.graph.node}
    return target, sorted(ops & set(blocked))
