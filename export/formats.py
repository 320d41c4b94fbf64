"""The export formats, in one table: what each writes and what it needs."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from detection import paths

from .device import Device


@dataclass(frozen=True)
class Format:
    name: str
    deploy_config: str       # under configs/deploy/, mmdeploy's naming
    filename: str            # in the version folder, Triton's default name
    backend: str = ''        # Triton `backend:` (onnxruntime, openvino)...
    platform: str = ''       # ...or `platform:` (tensorrt_plan)
    precision: str = 'fp32'
    gpu: bool = False        # needs a CUDA GPU and the tensorrt package
    cuda: bool = False       # needs --device cuda (TF32 exists only there)
    max_map_drop: float = 1.0  # the mAP gate's default, reduced precisions
    max_batch_size: int = 8
    # served as <name><suffix>, beside the default format's <name>
    suffix: str = ''

    @property
    def deploy_config_path(self) -> Path:
        return paths.DEPLOY_CONFIGS / self.deploy_config

    def model_name(self, base: str) -> str:
        return base + self.suffix

    @property
    def gated(self) -> bool:
        """Judged by mAP against its fp32 graph before it is published (a
        TensorRT engine is not: it is built where it runs)."""
        return self.backend == 'onnxruntime' and self.precision != 'fp32'

    @property
    def gpu_placement(self) -> bool:
        """Whether the export writes a named GPU placement beside the CPU
        one (``configs/gpu.pbtxt``, ``--model-config-name=gpu``): ONNX
        Runtime's CUDA provider runs it (not int8's QDQ graph, and NGC's
        openvino backend is CPU only)."""
        return self.backend == 'onnxruntime' and self.precision != 'int8'

    @property
    def takes_canvas(self) -> bool:
        """Shape buckets (``--canvas``) are preprocessing, judged in process
        by the mAP gate; a TensorRT engine's shapes are its profile's."""
        return not self.gpu

    @property
    def needs(self) -> str:
        if self.gpu:
            return 'GPU + TensorRT'
        int8 = self.precision == 'int8'
        if self.cuda:
            where = 'CUDA GPU (--device cuda)'
        elif self.backend == 'onnxruntime' and not int8:
            where = 'CPU or CUDA GPU'
        else:
            where = 'CPU'
        return '; '.join([where] + ['calibration images'] * int8
                         + ['COCO annotations for the mAP gate'] * self.gated)

    def unavailable(self, device: Device = Device()) -> Optional[str]:
        """Why this format cannot be built for ``device`` on this host, or
        None."""
        if self.cuda and not device.gpu:
            return (f'format {self.name} runs fp32 graphs with TF32 '
                    'arithmetic, which only a CUDA GPU has: export it with '
                    '--device cuda[:N]')
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
    Format('onnxruntime-fp16', 'detection_onnxruntime-fp16_dynamic.py',
           'model.onnx', backend='onnxruntime', precision='fp16',
           max_map_drop=0.3, suffix='_fp16'),
    Format('onnxruntime-tf32', 'detection_onnxruntime-tf32_dynamic.py',
           'model.onnx', backend='onnxruntime', precision='tf32', cuda=True,
           max_map_drop=0.3, suffix='_tf32'),
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
            '--canvas | GPU placement | deploy config |', '| --- ' * 9 + '|']
    for f in FORMATS.values():
        placement = ('configs/gpu.pbtxt' if f.gpu_placement else
                     'the engine is one' if f.gpu else 'none: CPU')
        rows.append(
            f'| {f.name} | <name>{f.suffix} | {f.backend or f.platform} | '
            f'{f.filename} | {f.precision} | {f.needs} | '
            f'{"yes" if f.takes_canvas else "no"} | {placement} | '
            f'{f.deploy_config} |')
    return '\n'.join(rows)
