"""The real Triton server, the ensemble and the thin client."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from triton_frcnn.client import ServerUnavailable, TritonDetector
from triton_frcnn.client.images import load_image
from export import parity

from .conftest import (ROOT, SAMPLES, batched_in_bursts, photo_like, png,
                       raw_request)


@pytest.fixture(scope='session')
def det(grpc_url):
    with TritonDetector(grpc_url, 'faster_rcnn', wait=60) as d:
        yield d


@pytest.mark.native
def test_ensemble_equals_in_process_onnxruntime(det, onnx_detector,
                                                unseen_images):
    for path in SAMPLES + unseen_images:
        served = det(path)
        local = onnx_detector(path)
        assert len(served) == len(local) > 0, path
        np.testing.assert_allclose(served.boxes, local.boxes, atol=0.5)
        np.testing.assert_allclose(served.scores, local.scores, atol=1e-5)
        np.testing.assert_array_equal(served.labels, local.labels)


@pytest.mark.native
def test_served_detections_match_inference_detector(det, mmdet_model,
                                                    unseen_images):
    for path in unseen_images:
        match = parity.match(parity.mmdet_detections(mmdet_model, path),
                             det(path), path.name)
        assert match.fraction >= 0.95, match


def test_class_names_come_back(det, exported):
    _, result = exported
    labels = (result.version_dir / 'labels.txt').read_text().splitlines()
    dets = det(SAMPLES[0])
    assert [labels[i] for i in dets.labels] == list(dets.names)


@pytest.mark.native
def test_http_and_grpc_agree(det, http_url):
    with TritonDetector(http_url, 'faster_rcnn', protocol='http') as http:
        for path in SAMPLES[:2]:
            a, b = det(path), http(path)
            np.testing.assert_array_equal(a.boxes, b.boxes)
            np.testing.assert_array_equal(a.scores, b.scores)
            assert list(a.names) == list(b.names)


@pytest.mark.native
def test_concurrent_requests_are_batched_and_stay_exact(det, grpc_url,
                                                        tmp_path):
    """Same-size images sent together share detector batches (the test
    export turns request batching on, with a 50 ms queue delay) and each
    still gets its own result."""
    paths = []
    for i in range(8):
        path = tmp_path / f'same_size_{i}.png'
        Image.fromarray(photo_like(330, 250, 200 + i)).save(path)
        paths.append(path)
    alone = [det(p) for p in paths]
    sizes = batched_in_bursts(grpc_url, 'faster_rcnn_detector', det, paths,
                              alone)
    assert sizes, 'three bursts of 8 ran one request an execution'


def test_drawn_image_differs_exactly_where_detections_are(det):
    path = SAMPLES[1]
    dets = det(path)
    shown = dets[dets.scores > 0.3]
    assert len(shown) > 0
    original = np.asarray(load_image(path)).astype(int)
    drawn = np.asarray(det.show_result(path, dets, score_thr=0.3)).astype(int)
    changed = np.abs(drawn - original).sum(axis=2) > 0
    h, w = changed.shape
    allowed = np.zeros_like(changed)
    label_room = 40  # the label sits just above (or inside) its box
    for x1, y1, x2, y2 in shown.boxes:
        allowed[max(0, int(y1) - label_room):min(h, int(y2) + 3),
                max(0, int(x1) - 3):min(w, int(x2) + 200)] = True
    assert changed.any()
    assert not (changed & ~allowed).any(), 'pixels changed away from boxes'
    for x1, y1, x2, y2 in shown.boxes:  # every box outline is drawn
        row = min(h - 1, int(round(y2)))
        assert changed[max(0, row - 2):row + 1, int(x1):int(x2) + 1].any()


def test_client_cli_writes_images_and_coco_json(grpc_url, tmp_path):
    bad = tmp_path / 'not_an_image.jpg'
    bad.write_text('hello')
    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, '-m', 'client', '-u', grpc_url, '--out', str(out),
         '--concurrency', '2', str(SAMPLES[0]), str(SAMPLES[2]), str(bad)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1
    assert f'{bad}: error: ' in proc.stderr and 'Traceback' not in proc.stderr
    assert 'not a decodable image' in proc.stderr
    stems = (SAMPLES[0].stem, SAMPLES[2].stem)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f'{s}.jpg' for s in stems] + [f'{s}.json' for s in stems]
        + ['detections.json'])
    rows = json.loads((out / 'detections.json').read_text())
    assert {r['file_name'] for r in rows} == {SAMPLES[0].name, SAMPLES[2].name}
    assert all(r['score'] > 0.3 and len(r['bbox']) == 4 and r['bbox'][2] > 0
               for r in rows)
    with Image.open(out / f'{SAMPLES[0].stem}.jpg') as annotated:
        assert annotated.size == Image.open(SAMPLES[0]).size


def test_client_reports_an_unreachable_server_in_one_line(tmp_path):
    from ground.process import free_port
    proc = subprocess.run(
        [sys.executable, '-m', 'client', '-u', f'127.0.0.1:{free_port()}',
         '--wait', '1', str(SAMPLES[0])],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith('frcnn-detect: error: cannot use Triton at')
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unknown_model_is_refused_before_sending(grpc_url):
    with pytest.raises(ServerUnavailable, match="model 'nope' not ready"):
        TritonDetector(grpc_url, 'nope', wait=1)


@pytest.mark.native
def test_one_request_of_four_images_gets_what_each_gets_alone(det, grpc_url):
    """A client's own batch (one request, four images that pad to one
    size) runs as one batch of the detector and each image gets exactly
    its own result."""
    from triton_frcnn import wire
    images = [png(photo_like(330 + i, 250, 300 + i)) for i in range(4)]
    outputs = raw_request(grpc_url, images)
    together = {t.name: outputs.as_numpy(t.name) for t in wire.OUTPUTS}
    for index, payload in enumerate(images):
        alone = det.infer_bytes(payload)
        got = wire.unpack(together, index)
        assert len(got) == len(alone) > 0
        np.testing.assert_allclose(got.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(got.scores, alone.scores, atol=1e-5)
        np.testing.assert_array_equal(got.labels, alone.labels)


@pytest.mark.native
def test_bad_image_gets_an_error_and_the_server_stays_up(det, server):
    with pytest.raises(Exception, match='bad image: not a decodable image'):
        det.infer_bytes(b'GIF89a garbage')
    assert server.is_ready()
    assert len(det(SAMPLES[0])) > 0
