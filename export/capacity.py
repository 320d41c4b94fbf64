"""How much of the host each model of the ensemble gets, and how long a
request may wait: the thread budget and queue policy the export writes.

The rule, for a CPU host with C CPUs (this process's affinity, capped by a
container's CPU quota; ``--cpus`` overrides):

* the detector: one instance with C intra-op threads and one inter-op
  thread (a second instance of C/2 threads measured no faster and doubles
  the latency at c=1). Its threads share the cores with the pre/post
  processes, and a thread that spins for work takes the core those
  processes need: the local stand-in backend turns spinning off
  (docs/performance.md has the measurement); NGC's native backend has no
  setting for it and spins;
* preprocess and postprocess: one instance each, one thread: together
  they are 1-3% of a request's time, so one process keeps up with a detector
  on many cores, and more threads would only compete with the detector's.
  On a GPU host the detector leaves the cores free, and one preprocess
  process would cap the server at its own rate, below a card's: preprocessing
  gets half the CPUs as instances there (one thread each), the rest staying
  for the server, the postprocess and ONNX Runtime's host side (how many a
  card needs is the GPU sitting's to measure: docs/gpu-sitting.md);
* no batching of separate requests on a CPU: a batch of n images costs n
  single runs there (measured 0.96-1.07x for both detectors), so a batch
  gains nothing and makes each of its requests wait for all the others (p99
  at c=8 of ~2 x 8 runs instead of ~8); on a GPU the detector's batcher
  groups what is queued, and that is where batches pay;
* every model's queue holds at most ``max_queue`` requests (64: as many
  clients as ``make load`` drives, so that load is queued, never refused)
  and a request waits at most ``queue_timeout_s``; beyond either, Triton
  refuses it at once (gRPC UNAVAILABLE, HTTP 503) instead of letting it wait
  minutes, and the client retries it with backoff.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

CGROUP_CPU_MAX = Path('/sys/fs/cgroup/cpu.max')  # cgroup v2: "quota period"
# detector instances per GPU in the GPU placement: NMS and the host copies
# around CPU-placed nodes synchronise the stream, and a second instance
# computes meanwhile
GPU_INSTANCES = 2


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: its affinity mask, capped by the
    cgroup's CPU quota (what a container's CPU limit sets)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != 'max':
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


@dataclass(frozen=True)
class Capacity:
    cpus: int
    detector_instances: int = 1
    max_queue: int = 64
    queue_timeout_s: float = 60.0
    gpu: bool = False
    batch_requests: Optional[bool] = None  # None: on a GPU only

    @classmethod
    def for_host(cls, cpus: Optional[int] = None, **overrides) -> 'Capacity':
        return cls(cpus or available_cpus(), **overrides)

    @property
    def detector_batches(self) -> bool:
        """Whether the detector's batcher groups separate requests."""
        return self.gpu if self.batch_requests is None else self.batch_requests

    @property
    def detector_threads(self) -> int:
        """Intra-op threads per detector instance: the cores, shared out."""
        return max(1, self.cpus // self.detector_instances)

    def detector_parameters(self, backend: str) -> Dict[str, str]:
        """The detector's config parameters, as NGC's native backends name
        them: ONNX Runtime's thread counts, OpenVINO's CPU plugin thread
        count."""
        if backend == 'openvino':
            return {'INFERENCE_NUM_THREADS': str(self.detector_threads)}
        return {'intra_op_thread_count': str(self.detector_threads),
                'inter_op_thread_count': '1',
                # the host memory of a large request goes back after it
                # (ONNX Runtime's CPU arena keeps its peak otherwise)
                'memory.enable_memory_arena_shrinkage': 'cpu:0'}

    @property
    def preprocess_instances(self) -> int:
        return max(1, self.cpus // 2) if self.gpu else 1

    @property
    def preprocess_parameters(self) -> Dict[str, str]:
        """OpenCV threads per preprocess instance (postprocessing is NumPy
        on a hundred rows: one thread by nature)."""
        return {'threads': '1'}
