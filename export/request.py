"""What an export is asked to do, in three parts that change for different
reasons: what to export (and the parity that proves it), how it is placed
and served (device, capacity, queues, shape buckets), and the accuracy gate
(for what is no longer exact). The command line fills each from its own
group of flags, by the same names."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional, Sequence, Tuple

from detection.preprocess import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, Size

from . import repository
from .capacity import GPU_INSTANCES, Capacity
from .device import Device
from .formats import FORMATS


@dataclass(frozen=True)
class Export:
    """What to export, where to, and how closely it must match mmdet."""
    config: Path
    checkpoint: Path
    images: Sequence[Path]   # the parity check's
    format: str = 'onnxruntime'
    name: str = 'faster_rcnn'
    repository: Path = Path('model_repository')
    version: Optional[int] = None
    min_parity: float = 0.95
    box_tol: float = 0.5
    score_tol: float = 1e-3


@dataclass(frozen=True)
class Placement:
    """Where the detector runs and how the server feeds it."""
    device: str = 'cpu'      # cpu, cuda or cuda:N: where the detector runs
    instances: int = 1       # detector instances
    cpus: Optional[int] = None  # the serving host's CPUs (default: this host's)
    gpu_cpus: Optional[int] = None  # a GPU pod's CPUs (default: cpus)
    max_queue: int = 64      # requests each model may queue; more: "busy"
    queue_timeout_s: float = 60.0  # longest wait in a queue; longer: "busy"
    max_queue_delay_us: int = 2000  # the batcher's wait, when it batches
    batch_requests: Optional[bool] = None  # None: on a GPU only
    trt_accelerator: Optional[str] = None
    max_pixels: int = DEFAULT_MAX_PIXELS   # served requests above: refused
    max_bytes: int = DEFAULT_MAX_BYTES
    canvas: Tuple[Size, ...] = ()  # shape buckets (h, w); mAP-gated
    # the GPU placement's buckets; None: --canvas, else the fewest that hold
    # every image (two_buckets); (): mmdet's padding there too
    gpu_canvas: Optional[Tuple[Size, ...]] = None


@dataclass(frozen=True)
class Accuracy:
    """The mAP gate: int8's calibration images; for int8, fp16, tf32 and a
    canvas, the annotated set and the largest AP drop (None: the format's)."""
    calibration: Sequence[Path] = ()
    accuracy_ann: Optional[Path] = None
    accuracy_images: Optional[Path] = None
    accuracy_limit: int = 0
    max_map_drop: Optional[float] = None
    # False only for `make bench`'s own scratch repository: its model has
    # random weights, which no annotated set can judge (not on the CLI)
    accuracy_gate: bool = True

    @property
    def annotated(self) -> bool:
        return bool(self.accuracy_ann and self.accuracy_images)


def taken(part: type, values: object):
    """``part`` filled from ``values``' attributes of the same names (an
    argparse namespace): nothing is copied by hand."""
    return part(**{f.name: getattr(values, f.name) for f in fields(part)
                   if hasattr(values, f.name)})


@dataclass(frozen=True)
class Request:
    export: Export
    placement: Placement = field(default_factory=Placement)
    accuracy: Accuracy = field(default_factory=Accuracy)

    @property
    def served_name(self) -> str:
        """The ensemble clients call: ``name``, or ``name_int8`` beside it."""
        return FORMATS[self.export.format].model_name(self.export.name)

    @property
    def detector_name(self) -> str:
        return repository.composing(self.served_name)[1]

    @property
    def target(self) -> Device:
        """The device; a TensorRT engine is built for a GPU, cuda:0
        unless one is named."""
        device = Device.parse(self.placement.device)
        return Device('cuda') if FORMATS[self.export.format].gpu and \
            not device.gpu else device

    @property
    def gated(self) -> bool:
        """Judged by mAP: a reduced precision, or a canvas (no longer
        mmdet's padding, so no longer exact)."""
        return FORMATS[self.export.format].gated or bool(self.placement.canvas)

    @property
    def map_drop(self) -> float:
        drop = self.accuracy.max_map_drop
        return FORMATS[self.export.format].max_map_drop if drop is None else drop

    @property
    def capacity(self) -> Capacity:
        placed = self.placement
        return Capacity.for_host(placed.cpus, detector_instances=placed.instances,
                                 max_queue=placed.max_queue,
                                 queue_timeout_s=placed.queue_timeout_s,
                                 gpu=self.target.gpu,
                                 batch_requests=placed.batch_requests)

    @property
    def gpu_capacity(self) -> Capacity:
        """The named GPU placement's: a GPU pod's CPUs, two detector
        instances a GPU, request batching."""
        placed = self.placement
        return Capacity.for_host(placed.gpu_cpus or placed.cpus,
                                 detector_instances=GPU_INSTANCES,
                                 max_queue=placed.max_queue,
                                 queue_timeout_s=placed.queue_timeout_s,
                                 gpu=True)
