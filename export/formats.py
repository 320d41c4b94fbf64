"""The export formats, in one table: what each writes and what it needs."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from detection import paths


@dataclass(frozen=True)
class Format:
    name: str
    deploy_config: str       # under configs/deploy/, mmdeploy's naming
    filename: str            # in the version folder, Triton's default name
    backend: str = ''        # Triton `backend:` (onnxruntime, openvino)...
    platform: str = ''       # ...or `platform:` (tensorrt_plan)
    precision: str = 'fp32'
    gpu: bool = False        # needs a CUDA GPU and the tensorrt package
    max_batch_size: int = 8
    # served as <name><suffix>, beside the default format's <name>
    suffix: str = ''

    @property
    def deploy_config_path(self) -> Path:
        return paths.DEPLOY_CONFIGS / self.deploy_config

    def model_name(self, base: str) -> str:
        return base + self.suffix

    @property
    def needs(self) -> str:
        if self.gpu:
            return 'GPU + TensorRT'
        if self.precision == 'int8':
            return 'CPU; calibration images; COCO annotations for the mAP gate'
        return 'CPU'

    def unavailable(self) -> Optional[str]:
        """Why this format cannot be built on this host, or None."""
        if not self.gpu:
            return None
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return (f'format {self.name} needs the tensorrt Python package '
                    'and a CUDA GPU; neither is here (use onnxruntime, or run '
                    'the export on a GPU host)')
        import torch
        if not torch.cuda.is_available() or shutil.which('nvidia-smi') is None:
            return f'format {self.name} needs a CUDA GPU; none is visible'
        return None


FORMATS = {f.name: f for f in (
    Format('onnxruntime', 'detection_onnxruntime_dynamic.py', 'model.onnx',
           backend='onnxruntime'),
    Format('onnxruntime-int8', 'detection_onnxruntime-int8_dynamic.py',
           'model.onnx', backend='onnxruntime', precision='int8',
           suffix='_int8'),
    Format('openvino', 'detection_openvino_dynamic.py', 'model.xml',
           backend='openvino', suffix='_openvino'),
    Format('tensorrt', 'detection_tensorrt_dynamic-320x320-1344x1344.py',
           'model.plan', platform='tensorrt_plan', gpu=True),
    Format('tensorrt-fp16',
           'detection_tensorrt-fp16_dynamic-320x320-1344x1344.py',
           'model.plan', platform='tensorrt_plan', precision='fp16', gpu=True),
)}


def table() -> str:
    """The formats as a markdown table (``python -m export --formats``)."""
    rows = ['| format | served as | Triton | file | precision | needs | '
            'deploy config |', '| --- ' * 7 + '|']
    for f in FORMATS.values():
        rows.append(
            f'| {f.name} | <name>{f.suffix} | {f.backend or f.platform} | '
            f'{f.filename} | {f.precision} | {f.needs} | {f.deploy_config} |')
    return '\n'.join(rows)
