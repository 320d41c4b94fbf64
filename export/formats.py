"""The export formats, in one table: what each writes, what it needs, and
the steps it runs (``steps.py``). Adding a format is a row here and its
deploy config under configs/deploy/: the pipeline and ``make bench`` read
the rows and run what they name."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from detection import paths

from . import steps
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
    # a named GPU placement beside the CPU one (configs/gpu.pbtxt): ONNX
    # Runtime's CUDA provider runs it (not int8's QDQ graph; NGC's openvino
    # backend is CPU only)
    gpu_placement: bool = False
    calibrated: bool = False  # needs calibration images
    # the steps (steps.py): the runtime's file, a reduced precision (judged
    # by the mAP gate), an engine built after the gate, the backend's
    # parameters
    convert: Callable = steps.as_onnx
    reduce: Optional[Callable] = None
    build: Optional[Callable] = None
    configure: Callable = steps.no_parameters
    bench: str = ''           # its rows' format in `make bench`; '': not run

    @property
    def deploy_config_path(self) -> Path:
        return paths.DEPLOY_CONFIGS / self.deploy_config

    def model_name(self, base: str) -> str:
        return base + self.suffix

    @property
    def gated(self) -> bool:
        """Judged by mAP against its fp32 graph before it is published (a
        TensorRT engine is not: it is built where it runs)."""
        return self.reduce is not None

    @property
    def tf32(self) -> bool:
        """Runs with TF32 arithmetic (ONNX Runtime's CUDA provider)."""
        return self.precision == 'tf32'

    @property
    def takes_canvas(self) -> bool:
        """Shape buckets (``--canvas``) are preprocessing, judged in process
        by the mAP gate; a TensorRT engine's shapes are its profile's."""
        return not self.gpu

    @property
    def needs(self) -> str:
        if self.gpu:
            return 'GPU + TensorRT'
        if self.cuda:
            where = 'CUDA GPU (--device cuda)'
        elif self.gpu_placement:
            where = 'CPU or CUDA GPU'
        else:
            where = 'CPU'
        return '; '.join([where] + ['calibration images'] * self.calibrated
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
           backend='onnxruntime', gpu_placement=True, bench='fp32'),
    Format('onnxruntime-int8', 'detection_onnxruntime-int8_dynamic.py',
           'model.onnx', backend='onnxruntime', precision='int8',
           suffix='_int8', calibrated=True, reduce=steps.quantized,
           bench='int8'),
    Format('onnxruntime-fp16', 'detection_onnxruntime-fp16_dynamic.py',
           'model.onnx', backend='onnxruntime', precision='fp16',
           max_map_drop=0.3, suffix='_fp16', gpu_placement=True,
           reduce=steps.halved),
    Format('onnxruntime-tf32', 'detection_onnxruntime-tf32_dynamic.py',
           'model.onnx', backend='onnxruntime', precision='tf32', cuda=True,
           max_map_drop=0.3, suffix='_tf32', gpu_placement=True,
           reduce=steps.as_tf32),
    # one image an execution: NGC's native openvino backend fixes the
    # model's batch at max_batch_size (ov::set_batch) and refuses any
    # execution of another total, or pads it with zeros at that cost
    Format('openvino', 'detection_openvino_dynamic.py', 'model.xml',
           backend='openvino', suffix='_openvino', convert=steps.to_openvino,
           configure=steps.openvino_parameters, bench='openvino',
           max_batch_size=1),
    Format('tensorrt', 'detection_tensorrt_dynamic-320x320-1344x1344.py',
           'model.plan', platform='tensorrt_plan', gpu=True,
           build=steps.tensorrt_engine),
    Format('tensorrt-fp16',
           'detection_tensorrt-fp16_dynamic-320x320-1344x1344.py',
           'model.plan', platform='tensorrt_plan', precision='fp16', gpu=True,
           build=steps.tensorrt_engine),
)}


def table() -> str:
    """The formats as a markdown table (``python -m export --help`` ends
    with it; docs/export.md shows it)."""
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
