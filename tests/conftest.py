"""Session fixtures: one export of the R50-FPN (seeded random weights, small
input scale) and one real Triton server on free ports, shared by all tests."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from detection.runtime import for_version
from export.repository import composing
from ground.engine import ENVIRONMENT, NATIVE, Engine

ROOT = Path(__file__).resolve().parent.parent
SMALL_CONFIG = ROOT / 'tests' / 'configs' / 'faster-rcnn_r50_fpn_small.py'
DEMO_CONFIG = ROOT / 'configs/mmdet/faster_rcnn/faster-rcnn_r18_fpn_synthetic.py'
DEMO_CHECKPOINT = ROOT / 'checkpoints/demo_r18_fpn_synthetic.pth'
SAMPLES = sorted((ROOT / 'assets' / 'samples').glob('*.jpg'))
# the engine every server of the session runs: the native backends where
# TRITON_BACKEND_DIR names them, the stand-in otherwise
ENGINE = Engine.from_environment()
NATIVE_ONLY = pytest.mark.skipif(
    ENGINE.name != NATIVE, reason=f'no native backends given: {ENVIRONMENT}='
    'DIR (make test-native BACKEND_DIR=DIR) runs the native tier on them')
STAND_IN_ONLY = pytest.mark.skipif(
    ENGINE.name == NATIVE, reason='a check of the stand-in backend; this '
    f'run serves with the native backends in {ENGINE.directory}')


def photo_like(width: int, height: int, seed: int) -> np.ndarray:
    """A BGR image with structure at several scales (not flat noise), so a
    random-weight detector produces varied boxes on it."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3),
                        dtype=np.uint8)
    image = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(5, max(6, min(width, height) // 4)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, (x, y), r, colour, -1)
    return image


def png(image: np.ndarray) -> bytes:
    return cv2.imencode('.png', image)[1].tobytes()


@pytest.fixture(scope='session')
def unseen_images(tmp_path_factory) -> list:
    """Images the export's parity step never saw, at sizes that are not
    multiples of 32, in several formats."""
    folder = tmp_path_factory.mktemp('unseen')
    paths = []
    for i, (w, h, ext) in enumerate([(333, 251, '.jpg'), (517, 389, '.png'),
                                     (250, 401, '.bmp'), (600, 203, '.webp')]):
        path = folder / f'unseen_{i}{ext}'
        cv2.imwrite(str(path), photo_like(w, h, seed=100 + i))
        paths.append(path)
    return paths


@pytest.fixture(scope='session')
def random_checkpoint(tmp_path_factory) -> Path:
    from export.random_checkpoint import make
    return make(SMALL_CONFIG, tmp_path_factory.mktemp('ckpt') / 'r50.pth', seed=0)


@pytest.fixture(scope='session')
def exported(tmp_path_factory, random_checkpoint):
    """The export pipeline, run once: its result and the repository."""
    from export.pipeline import run
    from export.request import Export, Placement, Request
    logging.getLogger('export').setLevel(logging.INFO)
    repo = tmp_path_factory.mktemp('model_repository')
    request = Request(
        Export(config=SMALL_CONFIG, checkpoint=random_checkpoint,
               images=SAMPLES, repository=repo),
        placement=Placement(max_queue_delay_us=50_000, batch_requests=True))
    return request, run(request)


@pytest.fixture(scope='session')
def exported_demo(exported, tmp_path_factory):
    """The committed demo detector, exported as ``demo`` into the same
    repository (so the one server serves both); its in-process runner."""
    from export.pipeline import run
    from export.request import Export, Request
    from synthetic.generate import write_split
    images = tmp_path_factory.mktemp('demo_parity')
    write_split(images, 'val', 4, seed=1)
    request, _ = exported
    result = run(Request(
        Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT,
               images=sorted((images / 'val').glob('*.jpg')), name='demo',
               repository=request.export.repository)))
    return for_version(result.version_dir)


@pytest.fixture(scope='session')
def val_split(tmp_path_factory):
    """The first 60 images of the val split (the generator is sequential, so
    they are the same images ``make eval`` scores first)."""
    from detection.coco import CocoSplit
    from synthetic.generate import write_split
    out = tmp_path_factory.mktemp('synthetic')
    ann = write_split(out, 'val', 60, seed=1)
    return CocoSplit(ann, out / 'val')


@pytest.fixture(scope='session')
def few_val(val_split):
    """The first 8 of ``val_split``: enough to score a model, for tests of a
    gate's refusal (any AP fails a gate that demands 5 points more)."""
    from detection.coco import CocoSplit
    return CocoSplit(val_split.ann_file, val_split.image_dir, 8)


@pytest.fixture(scope='session')
def exported_demo_int8(exported, exported_demo, val_split, tmp_path_factory):
    """The demo detector as ``-f onnxruntime-int8`` (served as ``demo_int8``
    beside ``demo``): calibrated on 16 train images, gated on ``val_split``."""
    from export.pipeline import run
    from export.request import Accuracy, Export, Request
    from synthetic.generate import write_split
    calibration = tmp_path_factory.mktemp('calibration')
    write_split(calibration, 'train', 16, seed=0)
    request, _ = exported
    result = run(Request(
        Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT, name='demo',
               format='onnxruntime-int8',
               images=[val_split.path(i) for i in val_split.image_ids[:2]],
               repository=request.export.repository),
        accuracy=Accuracy(calibration=sorted((calibration / 'train').glob('*.jpg')),
                          accuracy_ann=val_split.ann_file,
                          accuracy_images=val_split.image_dir)))
    return result.version_dir


@pytest.fixture(scope='session')
def exported_demo_fp16(exported, exported_demo, val_split):
    """The demo detector as ``-f onnxruntime-fp16`` (served as ``demo_fp16``
    beside ``demo``), gated on ``val_split``."""
    from export.pipeline import run
    from export.request import Accuracy, Export, Request
    request, _ = exported
    return run(Request(
        Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT, name='demo',
               format='onnxruntime-fp16',
               images=[val_split.path(i) for i in val_split.image_ids[:2]],
               repository=request.export.repository),
        accuracy=Accuracy(accuracy_ann=val_split.ann_file,
                          accuracy_images=val_split.image_dir))).version_dir


@pytest.fixture(scope='session')
def exported_demo_canvas(exported, exported_demo, val_split):
    """The demo detector on a 320x320 canvas (``--canvas``), served as
    ``demo_canvas`` with request batching on (a 50 ms wait), gated on
    ``val_split``."""
    from export.pipeline import run
    from export.request import Accuracy, Export, Placement, Request
    request, _ = exported
    return run(Request(
        Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT,
               name='demo_canvas',
               images=[val_split.path(val_split.image_ids[0])],
               repository=request.export.repository),
        placement=Placement(canvas=((320, 320),), batch_requests=True,
                            max_queue_delay_us=50_000),
        accuracy=Accuracy(accuracy_ann=val_split.ann_file,
                          accuracy_images=val_split.image_dir))).version_dir


@pytest.fixture(scope='session')
def exported_openvino(exported):
    """The same R50 and checkpoint as ``-f openvino``: served as
    ``faster_rcnn_openvino`` beside ``faster_rcnn``."""
    from export.pipeline import run
    from export.request import Export, Request
    request, _ = exported
    return run(Request(
        Export(config=SMALL_CONFIG, checkpoint=request.export.checkpoint,
               images=SAMPLES, repository=request.export.repository,
               format='openvino')))


@pytest.fixture(scope='session')
def detector_dir(exported) -> Path:
    return exported[1].version_dir


@pytest.fixture(scope='session')
def onnx_detector(detector_dir):
    return for_version(detector_dir)


@pytest.fixture(scope='session')
def mmdet_model(random_checkpoint):
    from export.model import load
    return load(SMALL_CONFIG, random_checkpoint)[0]


# the exports judged by mAP (on 60 images each) and OpenVINO's: most of the
# session's set-up time, so made only when a selected test asks for one
GATED = ('exported_demo_int8', 'exported_demo_fp16', 'exported_demo_canvas',
         'exported_openvino')


def pytest_collection_modifyitems(items) -> None:
    """The fast tier stays fast: a test that asks for a gated export is in
    the slow tier, or the run stops before it starts."""
    unmarked = [item.nodeid for item in items
                if set(GATED) & set(item.fixturenames)
                and not item.get_closest_marker('slow')]
    if unmarked:
        raise pytest.UsageError('these need a gated export (two minutes to '
                                'make); mark them slow: ' + ', '.join(unmarked))


@pytest.fixture(scope='session')
def stack(request, exported, exported_demo, tmp_path_factory):
    """The one server of the session, on the repository the exports write
    into: the R50's and the demo's, and of the others those the selected
    tests ask for (``make test-fast``, or one file, makes only what it
    uses)."""
    from tools.stack import served
    asked = {name for item in request.session.items
             for name in item.fixturenames}
    for name in GATED:
        if name in asked:
            request.getfixturevalue(name)
    export_request, _ = exported
    with served(export_request.export.repository,
                workdir=tmp_path_factory.mktemp('triton')) as stack:
        yield stack


@pytest.fixture(scope='session')
def server(stack):
    return stack.server


@pytest.fixture(scope='session')
def grpc_url(stack) -> str:
    return stack.grpc_url


@pytest.fixture(scope='session')
def http_url(stack) -> str:
    return stack.http_url


def batch_counts(grpc_url: str, model: str) -> dict:
    """Triton's statistics of ``model``: batch size -> executions."""
    import tritonclient.grpc as grpcclient
    stats = grpcclient.InferenceServerClient(grpc_url).get_inference_statistics(
        model, as_json=True)
    return {int(b['batch_size']): int(b['compute_infer']['count'])
            for b in stats['model_stats'][0].get('batch_stats', [])}


def raw_request(grpc_url: str, payloads, model: str = 'faster_rcnn'):
    """One inference request of encoded images, as any Triton client sends
    it (no project code between)."""
    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(grpc_url)
    tensor = grpcclient.InferInput('IMAGE', [len(payloads), 1], 'BYTES')
    tensor.set_data_from_numpy(np.array(payloads, dtype=object).reshape(-1, 1))
    return client.infer(model, [tensor])


def batched_in_bursts(grpc_url: str, model: str, detect, paths,
                      alone) -> list:
    """Send ``paths`` all at once through ``detect``, up to three times (on
    a busy host the one preprocess instance can space a burst out past the
    batcher's wait), checking each answer against the image's own result
    ``alone``; the batch sizes above 1 that ``model`` ran meanwhile."""
    from concurrent.futures import ThreadPoolExecutor
    grouped: list = []
    for _ in range(3):
        before = batch_counts(grpc_url, model)
        with ThreadPoolExecutor(len(paths)) as pool:
            together = list(pool.map(detect, paths))
        after = batch_counts(grpc_url, model)
        grouped += [n for n in after if n > 1 and after[n] > before.get(n, 0)]
        for a, t in zip(alone, together):
            assert len(a) == len(t) > 0
            np.testing.assert_allclose(t.boxes, a.boxes, atol=1e-3)
            np.testing.assert_allclose(t.scores, a.scores, atol=1e-5)
        if grouped:
            break
    return grouped


def copy_models(source: Path, target: Path, *ensembles: str) -> Path:
    """Hard-linked copies of ``ensembles`` and the models they run: a server
    started on ``target`` loads only what its test sends to."""
    for name in ensembles:
        for model in [*composing(name), name]:
            shutil.copytree(source / model, target / model, copy_function=os.link)
    return target
