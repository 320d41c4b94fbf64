"""Where the detector runs: ``cpu`` or ``cuda[:N]`` (mmdeploy's spelling).

For a GPU the export checks the export host has one (parity runs there),
writes ``instance_group [{ kind: KIND_GPU, gpus: [N] }]`` and the CUDA
execution provider's settings where NGC's native onnxruntime backend reads
them, and turns request batching on. The settings keep fp32 exact: TF32 off
(ONNX Runtime's CUDA provider turns it on by default). cuDNN's algorithm
search is left at the native backend's default (EXHAUSTIVE), which runs once
per input shape; the warm-up runs every shape the GPU placement is given at
load, so that no request pays for it where the placement has buckets. No
other choice has a measurement behind it yet (docs/gpu-sitting.md).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

@dataclass(frozen=True)
class Device:
    kind: str = 'cpu'   # 'cpu' or 'cuda'
    index: int = 0

    @classmethod
    def parse(cls, text: str) -> 'Device':
        """``cpu``, ``cuda`` or ``cuda:N``; anything else: ValueError."""
        kind, _, index = text.strip().lower().partition(':')
        if kind == 'cpu' and not index:
            return cls()
        if kind == 'cuda' and (not index or index.isdigit()):
            return cls('cuda', int(index or 0))
        raise ValueError(f'device {text!r}: expected cpu, cuda or cuda:N')

    def __str__(self) -> str:
        return 'cpu' if not self.gpu else f'cuda:{self.index}'

    @property
    def gpu(self) -> bool:
        return self.kind == 'cuda'

    def unavailable(self) -> Optional[str]:
        """Why the detector cannot run here on this device, or None."""
        if not self.gpu:
            return None
        import onnxruntime as ort
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            return (f'--device {self}: this onnxruntime has no CUDA execution '
                    'provider (install onnxruntime-gpu on a host with a CUDA '
                    'GPU, or export for --device cpu)')
        visible = visible_gpus()
        if self.index >= visible:
            return (f'--device {self}: {visible} CUDA GPU(s) visible here '
                    '(nvidia-smi -L)')
        return None

    def cuda_options(self, tf32: bool = False) -> Dict[str, str]:
        """The parameters of the ``cuda`` gpu_execution_accelerator, which
        the native backend passes to the CUDA provider as they are: TF32 off
        unless asked (ONNX Runtime's default is on)."""
        return {'use_tf32': '1' if tf32 else '0'} if self.gpu else {}

    def providers(self, tf32: bool = False) -> List[Union[str, tuple]]:
        """ONNX Runtime's providers for the in-process parity run, set up
        as the server sets them up."""
        if not self.gpu:
            return ['CPUExecutionProvider']
        return [('CUDAExecutionProvider', {
            'device_id': self.index, **self.cuda_options(tf32)}),
            'CPUExecutionProvider']


def visible_gpus() -> int:
    """CUDA GPUs nvidia-smi lists (0 without a driver)."""
    if shutil.which('nvidia-smi') is None:
        return 0
    try:
        listed = subprocess.run(['nvidia-smi', '-L'], capture_output=True,
                                text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listed.stdout.splitlines()
               if line.startswith('GPU ')) if listed.returncode == 0 else 0
