"""Triton instance count, ONNX Runtime threads per instance and the dynamic
batcher's delay, each measured with perf_analyzer on the detector.

Each variant rewrites the detector's config.pbtxt in the bench's scratch
repository and restarts the server; the config as ``make export`` wrote it is
measured the same way, so the rows compare. The original config is put back
whatever happens.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

from detection.preprocess import Prepared
from export import triton_config
from tools.stack import served

from . import perf_analyzer

VARIANTS = {  # {}: the config as the export wrote it
    'as exported: 1 instance, all cores, no batching of requests': {},
    '2 instances x 1 thread': dict(instances=2, threads=1, delay_us=0),
    'batching requests with a 2 ms delay': dict(instances=1, threads=0,
                                                delay_us=2000),
}
THREADS = 'intra_op_thread_count'  # the onnxruntime backend's parameter


def configure(config_path: Path, instances: Optional[int] = None,
              threads: Optional[int] = None,
              delay_us: Optional[int] = None) -> None:
    """The detector's config with the settings given changed (threads 0:
    one per core, as ONNX Runtime's default), the others as they are."""
    config = triton_config.parse(config_path.read_text())
    if instances is not None:
        config.instance_group[0].count = instances
    if delay_us is not None:
        config.dynamic_batching.max_queue_delay_microseconds = delay_us
        if delay_us:  # the export's CPU config takes one request an execution
            del config.dynamic_batching.preferred_batch_size[:]
    if threads:
        config.parameters[THREADS].string_value = str(threads)
    elif threads == 0 and THREADS in config.parameters:
        del config.parameters[THREADS]
    config_path.write_text(triton_config.to_text(config))


@contextmanager
def configured(config_path: Path, **settings) -> Iterator[None]:
    """The detector's config with ``settings`` (configure's) for the block,
    put back as it was written whatever happens."""
    original = config_path.read_text()
    try:
        if settings:
            configure(config_path, **settings)
        yield
    finally:
        config_path.write_text(original)


def measure(repository: Path, detector: str, sample: Prepared,
            concurrency: Sequence[int], work: Path) -> Dict[str, Dict]:
    config_path = repository / detector / 'config.pbtxt'
    rows: Dict[str, Dict] = {}
    for label, settings in VARIANTS.items():
        with configured(config_path, **settings), served(repository) as stack:
            rows.update(perf_analyzer.run(
                stack.grpc_url, detector, sample, concurrency, work,
                label=f' [{label}]'))
    return rows
