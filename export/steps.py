"""The steps a format runs between mmdeploy's fp32 graph and the file it
publishes, each named in the formats table (``formats.py``) and run by the
pipeline without knowing which format it serves:

- convert: the file the runtime loads (the ONNX graph itself, an OpenVINO
  IR), and what the metadata records of it;
- reduce: a reduced precision (int8, fp16, TF32), judged by the mAP gate;
- build: the engine built after the gate (TensorRT, on a GPU host);
- configure: the backend's own parameters in the detector's config.

Every step logs one line: what it did, how long it took, what it wrote.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, Sequence, Tuple

if TYPE_CHECKING:
    from detection.preprocess import Preprocessing

    from .device import Device

log = logging.getLogger('export')
# The CPU plugin properties NGC 24.10's openvino backend reads from a config's
# parameters (openvino_backend r24.10, src/openvino.cc); any other reaches
# its models only as a plugin default, from the image's plugins.xml
OPENVINO_PARAMETERS = ('INFERENCE_NUM_THREADS', 'COMPILATION_NUM_THREADS',
                       'HINT_BF16', 'NUM_STREAMS', 'PERFORMANCE_HINT')

Made = Tuple[Path, Dict]  # the file, what the metadata records of it


@contextmanager
def step(name: str) -> Iterator[dict]:
    """Time a step; the body fills ``note['done']`` with what it did."""
    note: dict = {}
    start = time.perf_counter()
    log.debug('%s: started', name)
    yield note
    log.info('%s: %s (%.1f s)', name, note.get('done', 'done'),
             time.perf_counter() - start)


def size(path: Path) -> str:
    return f'{path.stat().st_size / 2**20:.1f} MB'


def files(artifact: Path) -> List[Path]:
    """The files a model consists of, weights last: an OpenVINO IR is its
    ``.xml`` graph and the ``.bin`` beside it."""
    if artifact.suffix == '.xml':
        return [artifact, artifact.with_suffix('.bin')]
    return [artifact]


# convert: (fp32 graph, deploy config, work folder) -> the runtime's file

def as_onnx(onnx_path: Path, deploy_cfg, work: Path) -> Made:
    """ONNX Runtime and TensorRT's builder read the graph as it is."""
    return onnx_path, {}


def to_openvino(onnx_path: Path, deploy_cfg, work: Path) -> Made:
    from . import openvino_ir
    openvino = dict(deploy_cfg.get('openvino_config', {}))
    with step('openvino') as note:
        artifact = openvino_ir.convert(onnx_path, work / 'ir')
        made = files(artifact)
        note['done'] = (f'converted to {" + ".join(f.name for f in made)} '
                        f'({size(made[-1])}, fp32 weights); compiled with '
                        f'{openvino}')
    return artifact, {'openvino': openvino}


# reduce: (fp32 graph, preprocessing, deploy config, calibration images,
# target device, work folder) -> the reduced graph

def quantized(onnx_path: Path, params: 'Preprocessing', deploy_cfg,
              calibration: Sequence[Path], target: 'Device',
              work: Path) -> Made:
    from . import onnx_export, quantize
    calib = deploy_cfg.calib_config
    with step('quantize') as note:
        int8 = quantize.quantize(onnx_path, calibration, params,
                                 deploy_cfg, work / 'int8.onnx')
        ops = onnx_export.check(int8)
        calibrated = min(len(calibration), calib.max_images)
        note['done'] = (
            f'{calib.method} calibration on {calibrated} images; '
            f'{ops["QuantizeLinear"]} QuantizeLinear, {ops["DequantizeLinear"]} '
            f'DequantizeLinear -> {int8.name} ({size(int8)})')
    return int8, {'calibration': {'images': calibrated, **calib.to_dict()}}


def halved(onnx_path: Path, params: 'Preprocessing', deploy_cfg,
           calibration: Sequence[Path], target: 'Device', work: Path) -> Made:
    from . import fp16, onnx_export
    common = dict(deploy_cfg.backend_config.common_config)
    with step('fp16') as note:
        graph, kept = fp16.convert(onnx_path, common, work / 'fp16.onnx')
        onnx_export.check(graph)
        note['done'] = (f'ONNX Runtime\'s float16 conversion, inputs and '
                        f'outputs fp32, {", ".join(kept) or "no op"} kept '
                        f'fp32 -> {graph.name} ({size(graph)})')
    return graph, {'fp16': {**common, 'kept_fp32': kept}}


def as_tf32(onnx_path: Path, params: 'Preprocessing', deploy_cfg,
            calibration: Sequence[Path], target: 'Device', work: Path) -> Made:
    with step('tf32') as note:
        note['done'] = f'the fp32 graph, to run with use_tf32=1 on {target}'
    return onnx_path, {'tf32': {'use_tf32': 1}}


# build: (fp32 graph, deploy config, work folder, device) -> the engine

def tensorrt_engine(onnx_path: Path, deploy_cfg, work: Path,
                    device: 'Device') -> Path:
    """mmdeploy's ONNX -> TensorRT engine build, with the deploy config's
    profile and precision (GPU hosts with TensorRT only; not run here)."""
    from mmdeploy.apis.tensorrt import onnx2tensorrt
    with step('tensorrt') as note:
        onnx2tensorrt(str(work), 'end2end.engine', 0, deploy_cfg,
                      str(onnx_path), device=str(device))
        engine = work / 'end2end.engine'
        note['done'] = f'built {engine.name} ({size(engine)})'
    return engine


# configure: what the metadata records -> the backend's parameters

def no_parameters(meta: Dict) -> Dict[str, str]:
    return {}


def openvino_parameters(meta: Dict) -> Dict[str, str]:
    """The deploy config's settings that NGC's openvino backend reads."""
    return {k: v for k, v in meta.get('openvino', {}).items()
            if k in OPENVINO_PARAMETERS}
