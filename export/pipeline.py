"""The export stage: load -> ONNX -> check -> convert -> parity -> [reduce]
-> [mAP gate] -> [build] -> publish, the format's own steps (convert,
reduce, build, configure) taken from its row of the formats table.

Every step logs what it did, how long it took and what it wrote. Nothing
reaches the model repository until every check has passed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from detection.preprocess import (Preprocessing, Size, canvas_problem, decode,
                                  prepare, sizes, two_buckets)
from detection import paths
from detection.runtime import Detector, runner
from ground.files import sha256, tree_digest
from ground.versions import package_versions

from . import model as detector_model
from . import (accuracy, ensemble, onnx_export, parity, repository,
               store)
from . import triton_config
from .capacity import Capacity
from .device import Device
from .errors import ExportError
from .formats import FORMATS, Format
from .request import Request
from .steps import files, size, step

log = logging.getLogger('export')

PACKAGES = ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmdeploy', 'onnx',
            'onnxruntime', 'opencv-python', 'numpy')


@dataclass
class Result:
    version_dir: Union[Path, str]  # a folder, or the version's s3:// URL
    matches: List[parity.Match] = field(default_factory=list)


def refusal(request: Request, fmt: Format) -> Optional[str]:
    """Why this request cannot be exported here, checked before any work."""
    if request.placement.canvas and not fmt.takes_canvas:
        return (f'format {fmt.name} does not take --canvas: its shapes are '
                'set by its deploy config\'s profile')
    reason = fmt.unavailable(request.target) or request.target.unavailable()
    if reason:
        return reason
    if not request.export.images:
        return 'parity needs at least one image'
    judge = request.accuracy
    if request.gated and not ((judge.calibration or not fmt.calibrated) and (
            not judge.accuracy_gate or judge.annotated)):
        calibration = ('calibration images (--calibration) and '
                       if fmt.calibrated else '')
        what = f'format {fmt.name}' if fmt.gated else '--canvas'
        return (f'{what} needs {calibration}an annotated set for its mAP '
                'gate (--accuracy-ann, --accuracy-images)')
    if request.placement.gpu_canvas and judge.accuracy_gate and \
            not judge.annotated:
        return ('--gpu-canvas needs an annotated set for its mAP gate '
                '(--accuracy-ann, --accuracy-images); without one the GPU '
                "placement keeps mmdet's padding")
    return None


def run(request: Request) -> Result:
    fmt: Format = FORMATS[request.export.format]
    reason = refusal(request, fmt)
    if reason:
        raise ExportError(reason)
    if store.is_s3(request.export.repository):
        return to_s3(request)
    fresh = not (Path(request.export.repository) / request.detector_name).exists()
    model_dir = repository.writable_model_dir(request.export.repository,
                                              request.detector_name)
    try:
        return _export(request, fmt, model_dir)
    except BaseException:
        if fresh:  # a refused first export leaves no empty model folder
            with contextlib.suppress(OSError):
                model_dir.rmdir()
        raise


def to_s3(request: Request) -> Result:
    """Export into a staging folder, then publish it to the S3 repository
    (checked first: nothing is traced for a store that cannot be written)."""
    target = store.S3Store(str(request.export.repository))
    target.check()
    version = request.export.version or max(
        target.versions(request.detector_name), default=0) + 1
    with tempfile.TemporaryDirectory(prefix='export-s3-') as staged:
        result = run(dataclasses.replace(request, export=dataclasses.replace(
            request.export, repository=Path(staged), version=version)))
        with step('upload') as note:
            keys = target.publish(Path(staged), [request.served_name])
            note['done'] = (f'{len(keys)} objects to {request.export.repository}; '
                            f'configs last, {request.served_name} pinned to '
                            f'version {version}')
    return Result(f'{str(request.export.repository).rstrip("/")}/'
                  f'{request.detector_name}/{version}', result.matches)


@dataclass
class Loaded:
    """The mmdet model and what the export reads from it once."""
    model: object
    cfg: object
    params: Preprocessing
    digest: str
    classes: Sequence[str]
    gpu_canvas: Optional[Tuple[Size, ...]] = None  # None: no GPU placement

    @property
    def largest_side(self) -> int:
        """The longest side of any canvas the detector is given: mmdet's
        padding of the largest image, or a bucket of either placement."""
        sizes = [self.params.largest, *self.params.canvas,
                 *(self.gpu_canvas or ())]
        return max(max(size) for size in sizes)


def _export(request: Request, fmt: Format, model_dir: Path) -> Result:
    loaded = load(request)
    judge = request.accuracy
    split = (accuracy.annotated_split(
        judge.accuracy_ann, judge.accuracy_images, judge.accuracy_limit,
        loaded.classes) if judge.accuracy_gate and (
            request.gated or (judge.annotated and loaded.gpu_canvas)) else None)
    images = [Path(p) for p in request.export.images]
    decoded = [decode(p.read_bytes()) for p in images]
    with tempfile.TemporaryDirectory(prefix='export-') as workdir:
        work = Path(workdir)
        deploy_cfg = onnx_export.load_deploy_config(fmt.deploy_config_path)
        onnx_path = trace(loaded, deploy_cfg, decoded[0], work)
        artifact, extra_meta = fmt.convert(onnx_path, deploy_cfg, work)
        with step('parity') as note:
            matches = check_parity(
                loaded.model, runner(artifact, loaded.params.exact,
                                     extra_meta.get('openvino'),
                                     request.target.providers()),
                images, decoded, request)
            note['done'] = parity.summary(matches)
        if fmt.reduce:
            artifact, reduced = fmt.reduce(
                onnx_path, loaded.params, deploy_cfg,
                request.accuracy.calibration, request.target, work)
            extra_meta.update(reduced)
        if request.gated:
            extra_meta['accuracy'] = gate(
                fmt, onnx_path, artifact, loaded, split, request,
                extra_meta.get('openvino'))
        if loaded.gpu_canvas is not None:
            loaded.gpu_canvas, extra_meta['gpu_canvas'] = gpu_gate(
                fmt, onnx_path, artifact, loaded, split, request)
        if fmt.build:
            artifact = fmt.build(onnx_path, deploy_cfg, work, request.target)
        with step('publish') as note:
            version_dir, note['done'] = publish(
                request, fmt, loaded, deploy_cfg, onnx_path, artifact,
                {**extra_meta, 'parity': [m.__dict__ for m in matches]},
                model_dir)
    return Result(version_dir, matches)


def load(request: Request) -> Loaded:
    what, placed = request.export, request.placement
    with step('load') as note:
        model, cfg = detector_model.load(what.config, what.checkpoint)
        params = dataclasses.replace(
            detector_model.preprocessing(cfg), max_pixels=placed.max_pixels,
            max_bytes=placed.max_bytes)
        digest = sha256(Path(what.checkpoint))
        classes = model.dataset_meta['classes']
        note['done'] = (f'{cfg.model.type} with {len(classes)} classes from '
                        f'{what.checkpoint} (sha256 {digest[:8]})')
    params = dataclasses.replace(params, canvas=tuple(placed.canvas))
    gpu_canvas = None
    if FORMATS[what.format].gpu_placement:
        gpu_canvas = (params.canvas or two_buckets(params)
                      if placed.gpu_canvas is None else tuple(placed.gpu_canvas))
    for canvas, flag in ((params.canvas, '--canvas'),
                         (gpu_canvas or (), '--gpu-canvas')):
        problem = canvas_problem(dataclasses.replace(params, canvas=canvas))
        if problem:
            raise ExportError(f'{problem.replace("--canvas", flag)}; nothing '
                              'was written')
    return Loaded(model, cfg, params, digest, classes, gpu_canvas)


def trace(loaded: Loaded, deploy_cfg, image, work: Path) -> Path:
    """mmdeploy's trace on one image, its inputs and outputs settled, then
    the graph's checks."""
    with step('onnx') as note:
        onnx_path = onnx_export.export(
            loaded.model, deploy_cfg, prepare(image, loaded.params.exact),
            work / 'end2end')
        note['done'] = (f'mmdeploy traced opset '
                        f'{deploy_cfg.onnx_config.opset_version} -> '
                        f'{onnx_path.name} ({size(onnx_path)})')
    with step('io') as note:
        largest = loaded.largest_side
        slots = loaded.cfg.model.test_cfg.rcnn.max_per_img
        onnx_export.settle_io(onnx_path, largest,
                              {'dets': (slots, 5), 'labels': (slots,)})
        note['done'] = (f'input sliced to at most {largest}x{largest} (the '
                        'largest canvas of any placement: a tensor sent to '
                        f'the detector directly costs no more); outputs of '
                        f'{slots} rows an image')
    with step('check') as note:
        ops = onnx_export.check(onnx_path)
        note['done'] = (f'onnx.checker passed; {sum(ops.values())} nodes, '
                        f'standard ops only: {", ".join(sorted(ops))}')
    return onnx_path


def metadata_record(request: Request, fmt: Format, loaded: Loaded, deploy_cfg,
                    inputs, outputs, extra: dict) -> dict:
    """metadata.json: where the model came from and how it was checked."""
    cfg = loaded.cfg
    return {
        'format': fmt.name, 'precision': fmt.precision, 'file': fmt.filename,
        'created': datetime.now(timezone.utc).isoformat(),
        'config': str(request.export.config), 'model_config': cfg.pretty_text,
        'checkpoint': str(request.export.checkpoint),
        'checkpoint_sha256': loaded.digest,
        'deploy_config': fmt.deploy_config,
        'opset': deploy_cfg.onnx_config.opset_version,
        'inputs': {t.name: list(t.dims) for t in inputs},
        'outputs': {t.name: list(t.dims) for t in outputs},
        'device': str(request.target),
        'preprocessing': loaded.params.to_dict(),
        'rcnn_test_cfg': cfg.model.test_cfg.rcnn.to_dict(),
        'classes': list(loaded.classes),
        'exporter_sha256': exporter_digest(),
        **extra,  # parity (of the fp32 graph), openvino, the mAP gate
        'versions': package_versions(PACKAGES),
    }


def publish(request: Request, fmt: Format, loaded: Loaded, deploy_cfg,
            onnx_path: Path, artifact: Path, extra: dict,
            model_dir: Path) -> Tuple[Path, str]:
    """The detector version, then the pre/post models of the same version
    and the ensemble pinned to it; the version folder and a summary."""
    inputs, outputs = triton_config.graph_io(onnx_path)
    capacity = request.capacity

    def config(capacity: Capacity, device: Device, canvas, **pinning):
        return triton_config.detector(
            request.detector_name, fmt, inputs, outputs,
            canvas or (loaded.params.largest,), capacity,
            device=device, max_queue_delay_us=request.placement.max_queue_delay_us,
            trt_accelerator=request.placement.trt_accelerator,
            parameters=fmt.configure(extra), **pinning)
    placements = {'gpu': config(request.gpu_capacity, Device('cuda'),
                                loaded.gpu_canvas, pin_gpu=False)
                  } if fmt.gpu_placement else {}
    meta = metadata_record(request, fmt, loaded, deploy_cfg, inputs, outputs,
                           {**extra, 'capacity': dataclasses.asdict(capacity)})

    def fill(folder: Path) -> None:
        for source, target in zip(files(artifact),
                                  files(folder / fmt.filename)):
            shutil.copy2(source, target)
        (folder / 'labels.txt').write_text('\n'.join(loaded.classes) + '\n')
        (folder / 'metadata.json').write_text(json.dumps(meta, indent=2) + '\n')

    version_dir = repository.publish_version(model_dir, request.export.version, fill)
    repository.write_configs(model_dir, config(capacity, request.target,
                                               loaded.params.canvas),
                             placements, int(version_dir.name))
    served = ensemble.write(request.export.repository, int(version_dir.name),
                            ensemble.models(
        request.served_name, int(version_dir.name),
        fmt.max_batch_size, loaded.params, loaded.classes,
        loaded.cfg.model.test_cfg.rcnn.score_thr,
        loaded.cfg.model.test_cfg.rcnn.max_per_img, capacity,
        request.gpu_capacity if fmt.gpu_placement else None,
        loaded.gpu_canvas or ()))
    weights = files(version_dir / fmt.filename)[-1]
    named = ''.join(f', configs/{name}.pbtxt' for name in placements)
    return version_dir, (
        f'{version_dir} ({weights.name} {size(weights)}, labels.txt, '
        f'metadata.json, config.pbtxt{named}); ensemble {request.served_name} '
        f'pinned to version {version_dir.name} of it and of '
        f'{", ".join(p.parent.name for p in served[:2])}')


def gate(fmt: Format, onnx_path: Path, artifact: Path, loaded: Loaded, split,
         request: Request, openvino: Optional[dict]) -> Union[dict, str]:
    """The mAP gate: the model as it will be served (its precision, its
    canvas) against the fp32 graph on mmdet's padding, both on the device
    it will run on (on ``split``; None: not gated); what the metadata
    records of it. Raises (nothing written) when the model fails it."""
    if split is None:
        log.warning('accuracy: not gated (a benchmark-only export)')
        return 'not gated: benchmark only'
    params = loaded.params
    served = fmt.precision + ('_canvas' if params.canvas else '')
    label = fmt.precision + (f' on canvas {sizes(params.canvas)}'
                             if params.canvas else '')
    result = judged('accuracy', label, params, fmt, onnx_path, artifact,
                    loaded, split, request, openvino)
    return {'annotations': str(request.accuracy.accuracy_ann),
            'images': result.images, 'device': str(request.target),
            'ap_fp32': result.reference_ap,
            f'ap_{served}': result.candidate_ap, 'max_drop': result.max_drop,
            'ms_per_image': {'fp32': round(result.reference_ms, 1),
                             served: round(result.candidate_ms, 1)}}


def gpu_gate(fmt: Format, onnx_path: Path, artifact: Path, loaded: Loaded,
             split, request: Request) -> Tuple[Tuple[Size, ...], dict]:
    """The GPU placement's buckets, and how they were judged. On a GPU each
    new image size costs cuDNN a new choice of algorithms, so the GPU
    placement pads to the fewest buckets that hold every image, as mmdet's
    own batched inference pads a batch to its largest image, once the mAP
    gate has judged them on an annotated set: buckets it did not ask for
    that fail, or that no set can judge, leave mmdet's padding, exact by
    construction; ones it asked for refuse."""
    canvas, params = loaded.gpu_canvas or (), loaded.params
    if not canvas or canvas == params.canvas:
        return canvas, {'sizes': sizes(canvas), 'gate': (
            'the --canvas gate' if canvas else "none needed: mmdet's padding")}
    if split is None:
        log.warning("gpu canvas %s: not judged (no annotated set: "
                    "--accuracy-ann, --accuracy-images); the GPU placement "
                    "keeps mmdet's padding", sizes(canvas))
        return (), {'sizes': '', 'gate': f'{sizes(canvas)} not judged: no '
                    'annotated set'}
    try:
        result = judged('gpu canvas',
                        f'{fmt.precision} on GPU canvas {sizes(canvas)}',
                        dataclasses.replace(params, canvas=canvas), fmt,
                        onnx_path, artifact, loaded, split, request)
    except ExportError as exc:
        if request.placement.gpu_canvas is not None:
            raise
        reason = str(exc).replace('; nothing was written', '')
        log.warning("gpu canvas: %s; the GPU placement keeps mmdet's padding",
                    reason)
        return (), {'sizes': '', 'gate': f'{sizes(canvas)} failed: {reason}'}
    return canvas, {'sizes': sizes(canvas), 'gate': {
        'images': result.images, 'ap_fp32': result.reference_ap,
        'ap': result.candidate_ap, 'max_drop': result.max_drop}}


def judged(name: str, label: str, params: Preprocessing, fmt: Format,
           onnx_path: Path, artifact: Path, loaded: Loaded, split,
           request: Request, openvino: Optional[dict] = None) -> accuracy.Gate:
    """One mAP gate as a logged step: ``artifact`` on ``params`` against
    the fp32 graph on mmdet's padding, both on the export's device; raises
    (nothing written) when it fails."""
    device = request.target
    with step(name) as note:
        result = accuracy.check(
            accuracy.Run(onnx_path, loaded.params.exact, device.providers()),
            accuracy.Run(artifact, params, device.providers(tf32=fmt.tf32),
                         openvino),
            split, loaded.classes, request.map_drop, label)
        note['done'] = f'{result.summary()} of {request.accuracy.accuracy_ann}'
    return result


def check_parity(model, runtime: Detector, images: Sequence[Path], decoded,
                 request: Request) -> List[parity.Match]:
    """The runtime that will serve the graph (ONNX Runtime or OpenVINO), on
    our preprocessing, vs mmdet's ``inference_detector`` on its own pipeline,
    image by image; fails the export below the bar."""
    matches = []
    for path, image in zip(images, decoded):
        reference = parity.mmdet_detections(model, path)
        candidate = runtime.detect([image])[0]
        matches.append(parity.match(reference, candidate, path.name,
                                    box_tol=request.export.box_tol,
                                    score_tol=request.export.score_tol))
    if sum(m.reference for m in matches) == 0:
        raise ExportError(
            f'parity cannot judge the export: mmdet detects nothing on the '
            f'{len(matches)} parity images ({", ".join(p.name for p in images)}); '
            'pass images of your model\'s domain with --images; nothing was '
            'written')
    worst = min(matches, key=lambda m: m.fraction)
    if worst.fraction < request.export.min_parity:
        raise ExportError(
            f'parity check failed on {worst.name}: the exported model reproduces '
            f'{worst.matched}/{worst.reference} of mmdet\'s detections within '
            f'{request.export.box_tol} px / {request.export.score_tol} score, below '
            f'{request.export.min_parity:.0%}; nothing was written')
    return matches


def exporter_digest() -> str:
    """The code and deploy configs an export is made by: a checkout that
    changed them exports again instead of serving what older code made."""
    import detection
    return tree_digest([Path(__file__).parent,
                        Path(detection.__file__).parent,
                        paths.DEPLOY_CONFIGS])


def ensure(request: Request) -> Path:
    """The newest detector version if it was exported from this checkpoint
    and config for this host's capacity (threads, queues, batching), by
    this checkout's export code, and the ensemble is pinned to it;
    otherwise export now."""
    root = Path(request.export.repository)
    model_dir = root / request.detector_name
    found = repository.versions(model_dir)
    ensemble_config = root / request.served_name / 'config.pbtxt'
    if found and ensemble_config.exists():
        newest = model_dir / str(found[-1])
        meta_file = newest / 'metadata.json'
        pinned = {step.model_version for step in triton_config.parse(
            ensemble_config.read_text()).ensemble_scheduling.step}
        if meta_file.exists() and pinned == {found[-1]}:
            meta = json.loads(meta_file.read_text())
            if (meta.get('config') == str(request.export.config)
                    and meta.get('format') == request.export.format
                    and meta.get('capacity')
                    == dataclasses.asdict(request.capacity)
                    and meta['preprocessing'].get('canvas', [])
                    == [list(size) for size in request.placement.canvas]
                    and meta.get('checkpoint_sha256')
                    == sha256(Path(request.export.checkpoint))
                    and meta.get('exporter_sha256') == exporter_digest()):
                log.info('up to date: %s was exported from %s', newest,
                         request.export.checkpoint)
                return newest
    return run(request).version_dir
