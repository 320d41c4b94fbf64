"""The export stage: parity with mmdet, the graph, the written repository."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from detection.preprocess import BatchError, batch, decode, prepare
from export import parity
from export.triton_config import parse
from ground.files import sha256
from tritonclient.grpc import model_config_pb2 as mc

from .conftest import ROOT, SMALL_CONFIG, photo_like


def test_parity_recorded_by_the_export_meets_the_bar(exported):
    request, result = exported
    assert len(result.matches) == 4
    for match in result.matches:
        assert match.reference == 100, match  # the scaled classifier fires
        assert match.fraction >= 0.95, match
        assert match.max_box_diff <= 0.5 and match.max_score_diff <= 1e-3


def test_onnx_matches_inference_detector_on_unseen_images(
        mmdet_model, onnx_detector, unseen_images):
    """Images the export never saw, sizes not multiples of 32, four formats."""
    for path in unseen_images:
        reference = parity.mmdet_detections(mmdet_model, path)
        candidate = onnx_detector(path)
        match = parity.match(reference, candidate, path.name)
        assert len(reference) > 10, path
        assert match.fraction >= 0.95, match
        assert len(candidate) == len(reference)


def test_each_nms_runs_once_per_image(detector_dir, onnx_detector, tmp_path):
    """Both NonMaxSuppression nodes (the RPN's over 5 FPN levels, the R-CNN
    head's over every class) get one (batch entry x class) pair per image:
    the groups are kept apart by shifted coordinates, not by NMS classes.
    Their scores inputs, exposed as graph outputs, show it on one image."""
    import onnxruntime as ort
    model = onnx.load(str(detector_dir / 'model.onnx'))
    nms = [n for n in model.graph.node if n.op_type == 'NonMaxSuppression']
    assert len(nms) == 2
    scores = [node.input[1] for node in nms]
    for name in scores:
        model.graph.output.append(onnx.helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, None))
    exposed = tmp_path / 'exposed.onnx'
    onnx.save(model, str(exposed))
    inputs = batch([prepare(decode((ROOT / 'assets' / 'samples' / 'coffee.jpg')
                                   .read_bytes()), onnx_detector.params)])
    shapes = [a.shape for a in ort.InferenceSession(str(exposed)).run(
        scores, {'input': inputs['input'], 'img_shape': inputs['img_shape']})]
    rpn_levels = 5
    num_classes = 80
    assert [shape[:2] for shape in shapes] == [(1, 1), (1, 1)]
    assert sorted(shape[2] for shape in shapes) == sorted(
        [rpn_levels * 1000, num_classes * 1000])


def test_boxes_are_clipped_to_the_image_not_the_padded_canvas(onnx_detector,
                                                              unseen_images):
    for path in unseen_images:
        image = decode(path.read_bytes())
        h, w = image.shape[:2]
        dets = onnx_detector(path)
        assert dets.boxes[:, [0, 2]].max() <= w and dets.boxes[:, [1, 3]].max() <= h
        assert dets.boxes.min() >= 0
    # and at least one image has a box reaching its right or bottom edge,
    # which the padded canvas would have let run past it
    touching = [
        np.isclose(onnx_detector(p).boxes[:, 2], decode(p.read_bytes()).shape[1]).any()
        for p in unseen_images]
    assert any(touching)


def test_a_batch_gives_each_image_what_it_gets_alone(onnx_detector):
    """Different images with one padded size share a batch; per-image
    img_shape keeps each one's clipping and results its own."""
    images = [photo_like(400, 300, 1), photo_like(410, 305, 2),
              photo_like(380, 290, 3)]
    prepared = [prepare(i, onnx_detector.params) for i in images]
    assert len({p.tensor.shape for p in prepared}) == 1
    assert len({p.img_shape for p in prepared}) == 3
    together = onnx_detector.detect(images)
    for image, batched in zip(images, together):
        alone = onnx_detector.detect([image])[0]
        assert len(alone) == len(batched) > 0
        np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-5)
        np.testing.assert_array_equal(batched.labels, alone.labels)


def test_graph_holds_standard_ops_only(detector_dir):
    graph = onnx.load(str(detector_dir / 'model.onnx')).graph
    domains = {node.domain for node in graph.node}
    assert domains <= {'', 'ai.onnx'}
    ops = {node.op_type for node in graph.node}
    assert {'NonMaxSuppression', 'RoiAlign', 'TopK'} <= ops
    assert [i.name for i in graph.input] == ['input', 'img_shape']


@pytest.mark.slow
def test_the_tensorrt_formats_trace_a_plugin_free_graph(mmdet_model, tmp_path):
    """mmdeploy's tensorrt rewriters would emit its own plugins
    (MMCVMultiLevelRoiAlign, TRTBatchedNMS); the export traces with the
    standard-op rewriters for every format, so TensorRT's ONNX parser reads
    the same RoiAlign and NonMaxSuppression ONNX Runtime runs."""
    from export import onnx_export
    from export.formats import FORMATS
    from detection.preprocess import Preprocessing
    fmt = FORMATS['tensorrt-fp16']
    deploy_cfg = onnx_export.load_deploy_config(fmt.deploy_config_path)
    sample = prepare(photo_like(320, 240, 5), Preprocessing(scale=(416, 256)))
    path = onnx_export.export(mmdet_model, deploy_cfg, sample, tmp_path / 'trt')
    ops = onnx_export.check(path)  # raises on any non-standard op
    assert {'NonMaxSuppression', 'RoiAlign'} <= set(ops)
    assert deploy_cfg.backend_config.type == 'tensorrt'  # the caller's, kept
    assert deploy_cfg.backend_config.common_config.fp16_mode


def test_config_pbtxt_parses_back_and_matches_the_graph(exported):
    request, result = exported
    config = parse((result.version_dir.parent / 'config.pbtxt').read_text())
    assert config.name == 'faster_rcnn_detector'
    assert config.backend == 'onnxruntime' and not config.platform
    assert config.max_batch_size == 8
    inputs = {i.name: (i.data_type, list(i.dims)) for i in config.input}
    assert inputs == {'input': (mc.TYPE_FP32, [3, -1, -1]),
                      'img_shape': (mc.TYPE_FP32, [2])}
    outputs = {o.name: (o.data_type, list(o.dims)) for o in config.output}
    assert outputs == {'dets': (mc.TYPE_FP32, [100, 5]),  # max_per_img rows
                       'labels': (mc.TYPE_INT64, [100])}
    assert config.dynamic_batching.max_queue_delay_microseconds == 50_000
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    warmup = config.model_warmup[0]
    # the small test config resizes into 416x256: warm up on that canvas
    assert list(warmup.inputs['input'].dims) == [3, 256, 416]
    assert not config.optimization.HasField('execution_accelerators')


def test_metadata_and_labels(exported, random_checkpoint):
    _, result = exported
    meta = json.loads((result.version_dir / 'metadata.json').read_text())
    assert meta['checkpoint_sha256'] == sha256(random_checkpoint)
    assert meta['opset'] == 11 and meta['format'] == 'onnxruntime'
    assert meta['preprocessing']['scale'] == [416, 256]
    assert meta['preprocessing']['mean'] == [123.675, 116.28, 103.53]
    assert meta['preprocessing']['to_rgb'] is True
    assert meta['preprocessing']['pad_size_divisor'] == 32
    assert meta['versions']['mmdeploy'] == '1.3.1'
    assert meta['versions']['torch'].startswith('2.13.0')
    labels = (result.version_dir / 'labels.txt').read_text().splitlines()
    assert len(labels) == 80 and labels[0] == 'person' and labels[-1] == 'toothbrush'
    assert meta['classes'] == labels


def test_ensemble_pins_the_detector_version_on_every_step(exported):
    """Pre/post are published with the detector's version number, each with
    its own parameters and code, and the ensemble pins that version."""
    request, result = exported
    repo, version = request.export.repository, int(result.version_dir.name)
    ensemble = parse((repo / 'faster_rcnn' / 'config.pbtxt').read_text())
    assert ensemble.platform == 'ensemble'
    steps = ensemble.ensemble_scheduling.step
    assert [(s.model_name, s.model_version) for s in steps] == [
        ('faster_rcnn_preprocess', version), ('faster_rcnn_detector', version),
        ('faster_rcnn_postprocess', version)]
    pre = repo / 'faster_rcnn_preprocess' / str(version)
    post = repo / 'faster_rcnn_postprocess' / str(version)
    assert json.loads((pre / 'parameters.json').read_text())['scale'] == [416, 256]
    labels = (result.version_dir / 'labels.txt').read_text().splitlines()
    assert json.loads((post / 'parameters.json').read_text())['classes'] == labels
    for folder in (pre, post):
        assert (folder / 'model.py').is_file()
        assert (folder / 'detection' / 'preprocess.py').is_file()
        assert (folder / 'triton_frcnn' / 'wire.py').read_text() == \
            (ROOT / 'client/src/triton_frcnn/wire.py').read_text()
    # the client's tensors, from the one wire contract
    from triton_frcnn import wire
    assert [(o.name, list(o.dims)) for o in ensemble.output] == [
        (t.name, list(t.dims)) for t in wire.OUTPUTS]
    assert not parse((repo / 'faster_rcnn_postprocess' / 'config.pbtxt')
                     .read_text()).parameters  # nothing version-specific


def run_export(*args):
    return subprocess.run([sys.executable, '-m', 'export', *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith('export: error: ')
    assert 'Traceback' not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def test_missing_checkpoint_is_one_line_and_writes_nothing(tmp_path):
    proc = run_export('-c', SMALL_CONFIG, '-w', tmp_path / 'nope.pth',
                      '-r', tmp_path / 'repo')
    assert_one_line_error(proc, 'checkpoint not found', 'nope.pth')
    assert not list((tmp_path / 'repo').glob('*/[0-9]*'))


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    proc = run_export('-c', SMALL_CONFIG, '-w', bad, '-r', tmp_path / 'repo')
    assert_one_line_error(proc, 'bad.pth')
    assert not list((tmp_path / 'repo').glob('*/[0-9]*'))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    """A pickle whose load would call a function: weights_only refuses it."""
    import torch

    class Payload:
        def __reduce__(self):
            return (print, ('pwned',))
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': Payload()}, evil)
    proc = run_export('-c', SMALL_CONFIG, '-w', evil, '-r', tmp_path / 'repo')
    assert_one_line_error(proc, 'refused by the safe loader')
    assert 'pwned' not in proc.stdout


@pytest.mark.slow
def test_config_that_is_not_two_stage(tmp_path, random_checkpoint):
    config = tmp_path / 'retinanet.py'
    config.write_text(
        "_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']\n")
    proc = run_export('-c', config, '-w', random_checkpoint,
                      '-r', tmp_path / 'repo')
    assert_one_line_error(proc, 'RetinaNet', 'a single-stage or other detector')


def test_unwritable_repository(tmp_path, random_checkpoint):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    proc = run_export('-c', SMALL_CONFIG, '-w', random_checkpoint,
                      '-r', blocker / 'repo')
    assert_one_line_error(proc, 'not writable')


def test_tensorrt_without_gpu_stops_at_once(tmp_path, random_checkpoint):
    proc = run_export('-c', SMALL_CONFIG, '-w', random_checkpoint,
                      '-f', 'tensorrt', '-r', tmp_path / 'repo')
    assert_one_line_error(proc, 'tensorrt', 'GPU')
    assert not (tmp_path / 'repo').exists()


@pytest.mark.slow
def test_parity_failure_fails_the_export_and_writes_nothing(
        tmp_path, random_checkpoint):
    """Zero tolerance: the graph's float rounding (~1e-5 px) must fail it."""
    from export.errors import ExportError
    from export.pipeline import run
    from export.request import Export, Request
    from .conftest import SAMPLES
    request = Request(
        Export(config=SMALL_CONFIG, checkpoint=random_checkpoint,
               images=SAMPLES[:1], repository=tmp_path / 'repo', box_tol=0.0,
               score_tol=0.0))
    with pytest.raises(ExportError, match='parity check failed.*nothing was'):
        run(request)
    assert not list((tmp_path / 'repo').glob('*/[0-9]*'))
    assert not list((tmp_path / 'repo').glob('*/.*'))


def test_a_batch_takes_one_padded_size_and_says_so(onnx_detector):
    small = prepare(photo_like(100, 80, 0), onnx_detector.params)
    wide = prepare(photo_like(400, 100, 0), onnx_detector.params)
    with pytest.raises(BatchError, match=r'mixed-size batch: its images pad '
                       r'to 128x416,256x320 \(HxW\).*separate requests'):
        batch([small, wide])
    with pytest.raises(BatchError, match='empty batch: the request holds no '
                       'images'):
        batch([])
