"""Shape buckets (``--canvas``): images padded to the smallest bucket that
holds them, so that images of different sizes share a batch; judged by the
mAP gate, since the padding is no longer mmdet's."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from triton_frcnn import wire
from triton_frcnn.client import TritonDetector

from detection.preprocess import (BatchError, Preprocessing, batch, bucket,
                                  canvas_problem, prepare)
from detection.runtime import for_version
from export.errors import ExportError
from export.pipeline import run
from export.request import Accuracy, Export, Placement, Request
from export.triton_config import parse

from .conftest import (DEMO_CHECKPOINT, DEMO_CONFIG, ROOT, batched_in_bursts,
                       photo_like, raw_request)

R50 = Preprocessing()  # 1333x800: landscape pads up to 800x1344
BUCKETS = ((800, 1344), (1344, 800), (608, 832))


def test_an_image_gets_the_smallest_bucket_that_holds_it():
    assert bucket((480, 640), BUCKETS) == (608, 832)
    assert bucket((640, 480), BUCKETS) == (800, 1344)  # only landscape holds
    assert bucket((800, 1088), BUCKETS) == (800, 1344)
    assert bucket((1344, 800), BUCKETS) == (1344, 800)
    assert bucket((1344, 1344), BUCKETS) == (1344, 1344)  # none: its own


def test_the_canvas_only_adds_padding():
    """Inside the resized image the tensor is the exact one; the rest is the
    pad value; the sizes that map boxes back are unchanged."""
    image = photo_like(640, 480, seed=1)
    exact = prepare(image, R50)
    padded = prepare(image, Preprocessing(canvas=BUCKETS))
    assert exact.tensor.shape == (3, 800, 1088)
    assert padded.tensor.shape == (3, 800, 1344)
    np.testing.assert_array_equal(padded.tensor[:, :800, :1088], exact.tensor)
    assert not padded.tensor[:, :, 1088:].any()
    assert (padded.img_shape, padded.ori_shape, padded.scale_factor) == (
        exact.img_shape, exact.ori_shape, exact.scale_factor)


def test_images_of_different_sizes_form_one_batch_on_a_canvas():
    images = [photo_like(640, 480, 1), photo_like(600, 300, 2)]
    with pytest.raises(BatchError, match=r'mixed-size batch: its images pad to '
                       r'672x1344,800x1088 \(HxW\).* --canvas'):
        batch([prepare(i, R50) for i in images])
    tensors = batch([prepare(i, Preprocessing(canvas=BUCKETS)) for i in images])
    assert tensors['input'].shape == (2, 3, 800, 1344)
    np.testing.assert_array_equal(tensors['img_shape'],
                                  [[800, 1067], [667, 1333]])


def test_the_canvas_travels_through_json():
    params = Preprocessing(canvas=BUCKETS)
    again = Preprocessing.from_dict(json.loads(json.dumps(params.to_dict())))
    assert again == params and again.canvas == BUCKETS
    assert again.exact == R50


def test_a_canvas_must_hold_every_image_and_fit_the_divisor():
    assert canvas_problem(Preprocessing(canvas=BUCKETS)) is None
    assert canvas_problem(Preprocessing(canvas=((1344, 1344),))) is None
    assert canvas_problem(Preprocessing(canvas=((800, 1344),))) == (
        'canvas 800x1344 does not hold every image this config resizes to: '
        'landscape ones pad up to 800x1344, portrait ones up to 1344x800; '
        '--canvas 800x1344,1344x800 holds all')
    assert canvas_problem(Preprocessing(canvas=((800, 1340),))) == (
        'canvas 800x1340 is not a multiple of the padding divisor 32 in both '
        'sides')


def export_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'export', '-c',
                           str(DEMO_CONFIG), '-w', str(DEMO_CHECKPOINT), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.mark.slow
def test_bad_canvas_flags_get_one_line(tmp_path):
    repo = tmp_path / 'repo'
    proc = export_cli('-r', str(repo), '--canvas', '320x')
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1] == (
        "python -m export: error: argument --canvas: '320x' is not "
        "HxW[,HxW...] (e.g. 800x1344,1344x800)")
    proc = export_cli('-r', str(repo), '--gpu-canvas', '0x320')
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1] == (
        "python -m export: error: argument --gpu-canvas: '0x320' is not "
        "HxW[,HxW...] (e.g. 800x1344,1344x800)")
    proc = export_cli('-r', str(repo), '-f', 'tensorrt', '--canvas', '320x320')
    assert proc.returncode == 1 and proc.stderr == (
        'export: error: format tensorrt does not take --canvas: its shapes are '
        "set by its deploy config's profile\n")
    proc = export_cli('-r', str(repo), '--canvas', '320x320')
    assert proc.returncode == 1 and proc.stderr == (
        'export: error: --canvas needs an annotated set for its mAP gate '
        '(--accuracy-ann, --accuracy-images)\n')
    proc = export_cli('-r', str(repo), '--gpu-canvas', '320x320')
    assert proc.returncode == 1 and proc.stderr == (
        'export: error: --gpu-canvas needs an annotated set for its mAP gate '
        '(--accuracy-ann, --accuracy-images); without one the GPU placement '
        "keeps mmdet's padding\n")
    assert not repo.exists()


@pytest.mark.parametrize('field', ['canvas', 'gpu_canvas'])
def test_a_canvas_too_small_for_the_config_is_refused(tmp_path, val_split, field):
    flag = '--' + field.replace('_', '-')
    with pytest.raises(ExportError, match=r'^canvas 256x320 does not hold every '
                       'image this config resizes to: they pad up to 320x320; '
                       f'{flag} 320x320 holds all; nothing was written$'):
        run(Request(
            Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT,
                   repository=tmp_path,
                   images=[val_split.path(val_split.image_ids[0])]),
            placement=Placement(**{field: ((256, 320),)}),
            accuracy=Accuracy(accuracy_ann=val_split.ann_file,
                              accuracy_images=val_split.image_dir)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_canvas_is_gated_recorded_and_warmed_up(exported_demo_canvas):
    meta = json.loads((exported_demo_canvas / 'metadata.json').read_text())
    assert meta['preprocessing']['canvas'] == [[320, 320]]
    gate = meta['accuracy']
    assert gate['images'] == 60 and gate['max_drop'] == 1.0
    assert gate['ap_fp32'] >= 50
    assert 0 <= gate['ap_fp32'] - gate['ap_fp32_canvas'] <= 1.0
    timing = gate['ms_per_image']  # both models, image by image in turn
    assert set(timing) == {'fp32', 'fp32_canvas'} and min(timing.values()) > 0
    # parity: the graph on mmdet's padding, as for every export
    assert [(m['matched'], m['reference'])
            for m in meta['parity']] == [(2, 2)]
    config = parse((exported_demo_canvas.parent / 'config.pbtxt').read_text())
    assert [w.name for w in config.model_warmup] == ['zeros_320x320']
    assert list(config.model_warmup[0].inputs['input'].dims) == [3, 320, 320]
    preprocess = exported_demo_canvas.parent.parent / 'demo_canvas_preprocess'
    served = json.loads((preprocess / '1' / 'parameters.json').read_text())
    assert served['canvas'] == [[320, 320]]


@pytest.fixture(scope='module')
def mixed_sizes(val_split, tmp_path_factory):
    """Demo-domain images of four padded sizes: as generated (320x256),
    portrait, and two wider aspects."""
    folder = tmp_path_factory.mktemp('mixed')
    paths = []
    for i, image_id in enumerate(val_split.image_ids[:8]):
        image = cv2.imread(str(val_split.path(image_id)))
        image = [image, cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE),
                 cv2.resize(image, (300, 160)),
                 cv2.resize(image, (300, 200))][i % 4]
        path = folder / f'mixed_{i}.png'
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.mark.slow
def test_mixed_sizes_share_batches_and_stay_exact(exported_demo_canvas,
                                                  mixed_sizes, grpc_url):
    """Eight images of four sizes, sent at once, run in shared batches
    (request batching on, a 50 ms wait) and each gets what it gets alone."""
    local = for_version(exported_demo_canvas)
    alone = [local(p) for p in mixed_sizes]
    exact = local.params.exact  # mmdet's padding: four shapes
    assert {prepare(cv2.imread(str(p)), exact).tensor.shape
            for p in mixed_sizes} == {(3, 256, 320), (3, 320, 256),
                                      (3, 192, 320), (3, 224, 320)}
    with TritonDetector(grpc_url, 'demo_canvas', wait=60) as served:
        grouped = batched_in_bursts(grpc_url, 'demo_canvas_detector', served,
                                    mixed_sizes, alone)
    assert grouped, 'three bursts of 8 ran one request an execution'


@pytest.mark.slow
def test_one_request_of_mixed_sizes_is_served(exported_demo_canvas,
                                              mixed_sizes, grpc_url):
    local = for_version(exported_demo_canvas)
    payloads = [p.read_bytes() for p in mixed_sizes[:4]]
    outputs = raw_request(grpc_url, payloads, 'demo_canvas')
    arrays = {t.name: outputs.as_numpy(t.name) for t in wire.OUTPUTS}
    for i, want in enumerate(local.detect(payloads)):
        got = wire.unpack(arrays, i)
        assert len(got) == len(want) > 0
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
