"""Triton ``config.pbtxt`` for the detector, built as a protobuf message.

Names, dtypes and dims come from the exported graph, so the config cannot
drift from the model. Written with protobuf's text format, so Triton (and the
tests) parse exactly what was generated.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from .capacity import Capacity
from .device import Device
from .formats import Format

# ONNX TensorProto element types -> Triton data types
_ONNX_TO_TRITON = {1: mc.TYPE_FP32, 2: mc.TYPE_UINT8, 6: mc.TYPE_INT32,
                   7: mc.TYPE_INT64, 9: mc.TYPE_BOOL, 10: mc.TYPE_FP16,
                   11: mc.TYPE_FP64}


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: int          # a model_config_pb2 DataType
    dims: Tuple[int, ...]   # without the batch axis; -1 where dynamic


def graph_io(onnx_path: Path) -> Tuple[List[Tensor], List[Tensor]]:
    """Inputs and outputs of an ONNX graph whose first axis is the batch."""
    import onnx
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def tensors(values) -> List[Tensor]:
        found = []
        for value in values:
            if value.name in initializers:
                continue
            kind = value.type.tensor_type
            dims = tuple(d.dim_value if d.HasField('dim_value') else -1
                         for d in kind.shape.dim)
            found.append(Tensor(value.name, _ONNX_TO_TRITON[kind.elem_type],
                                dims[1:]))
        return found
    return tensors(graph.input), tensors(graph.output)


def limit_queue(config: mc.ModelConfig, capacity: Capacity,
                max_queue_delay_us: int = 0, batches: bool = False) -> None:
    """Dynamic batching with the queue cap and wait limit: a request beyond
    either is refused at once (UNAVAILABLE) rather than left waiting. Unless
    ``batches``, each execution takes one request (a client's own batch
    stays whole)."""
    batching = config.dynamic_batching
    batching.max_queue_delay_microseconds = max_queue_delay_us if batches else 0
    batching.preferred_batch_size[:] = [] if batches else [1]
    policy = batching.default_queue_policy
    policy.max_queue_size = capacity.max_queue
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    policy.default_timeout_microseconds = int(capacity.queue_timeout_s * 1e6)
    policy.allow_timeout_override = True


def detector(name: str, fmt: Format, inputs: Sequence[Tensor],
             outputs: Sequence[Tensor],
             warmup_shapes: Sequence[Tuple[int, int]],
             capacity: Capacity, device: Device = Device(),
             max_queue_delay_us: int = 2000,
             trt_accelerator: Optional[str] = None,
             parameters: Optional[Dict[str, str]] = None,
             pin_gpu: bool = True) -> mc.ModelConfig:
    """The detector's config; ``warmup_shapes``: the padded sizes (h, w)
    it runs while loading, once each, and on a GPU once for every batch
    size the batcher may form (cuDNN picks its algorithms for a shape on
    its first run: the canvas's buckets then cost no request that time);
    ``parameters``: the backend's own settings, beside the thread budget
    ``capacity`` gives; ``pin_gpu``: False places the instances on every
    GPU the server sees (a pod's), not on ``device``'s index.

    ``trt_accelerator`` ("FP32"/"FP16") adds ONNX Runtime's TensorRT execution
    provider for GPU hosts: the same ONNX file, TensorRT speed, no plugins.
    """
    config = mc.ModelConfig(name=name, max_batch_size=fmt.max_batch_size)
    if fmt.backend:
        config.backend = fmt.backend
    else:
        config.platform = fmt.platform
    for spec, field in ((inputs, config.input), (outputs, config.output)):
        for tensor in spec:
            field.add(name=tensor.name, data_type=tensor.data_type,
                      dims=list(tensor.dims))
    place(config, capacity, device, max_queue_delay_us,
          tf32=fmt.tf32, pin_gpu=pin_gpu)
    warm_up(config, warmup_shapes, capacity.gpu)
    for key, value in (parameters or {}).items():
        config.parameters[key].string_value = str(value)
    if trt_accelerator:
        accelerator = config.optimization.execution_accelerators \
            .gpu_execution_accelerator.add(name='tensorrt')
        accelerator.parameters['precision_mode'] = trt_accelerator
        accelerator.parameters['max_workspace_size_bytes'] = str(1 << 30)
    return config


def warm_up(config: mc.ModelConfig, shapes: Sequence[Tuple[int, int]],
            every_batch: bool) -> None:
    """Zero inputs of each padded size (h, w) the detector runs while
    loading; ``every_batch``: once for every batch size the batcher may form
    (on a GPU, cuDNN picks its algorithms for a shape on its first run)."""
    del config.model_warmup[:]
    batches = range(1, config.max_batch_size + 1) if every_batch else [1]
    for (height, width), size in itertools.product(shapes, batches):
        warmup = config.model_warmup.add(
            name=f'zeros_{height}x{width}' + (f'_x{size}' if size > 1 else ''),
            batch_size=size)
        for tensor in config.input:
            canvas = iter((height, width))  # the dynamic axes
            dims = [d if d > 0 else next(canvas) for d in tensor.dims]
            warmup.inputs[tensor.name].CopyFrom(mc.ModelWarmup.Input(
                data_type=tensor.data_type, dims=dims, zero_data=True))


def place(config: mc.ModelConfig, capacity: Capacity, device: Device,
          max_queue_delay_us: int = 2000, tf32: bool = False,
          pin_gpu: bool = True) -> None:
    """Where the detector runs and how its queue feeds it: the instance
    group on ``device``, the queue policy, batching and threads ``capacity``
    gives, and ONNX Runtime's CUDA provider options (exact fp32 unless
    ``tf32``).
    The export calls it; so does ``python -m bench.gpu``, which moves a
    detector exported on a host without a GPU onto the GPU host's card (the
    graph file is the same for both)."""
    limit_queue(config, capacity, max_queue_delay_us,
                batches=capacity.detector_batches)
    del config.instance_group[:]
    group = config.instance_group.add(
        count=capacity.detector_instances,
        kind=mc.ModelInstanceGroup.KIND_GPU if capacity.gpu
        else mc.ModelInstanceGroup.KIND_CPU)
    if device.gpu and pin_gpu:
        group.gpus[:] = [device.index]
    onnxruntime = config.backend == 'onnxruntime'
    for key, value in capacity.detector_parameters(config.backend).items():
        config.parameters[key].string_value = value
    accelerators = config.optimization.execution_accelerators \
        .gpu_execution_accelerator
    for old in [a for a in accelerators if a.name == 'cuda']:
        accelerators.remove(old)
    if device.gpu and onnxruntime:
        accelerators.add(name='cuda').parameters.update(
            device.cuda_options(tf32))


def serve_only(config: mc.ModelConfig, version: int) -> None:
    """Load just this version: a folder that is not listed (a newer one still
    being uploaded, an older one) is never served by accident."""
    config.version_policy.specific.versions[:] = [version]


def to_text(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())
