"""The openvino format: the same traced graph as an OpenVINO IR, exact to
mmdet, served through the openvino backend."""
from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from triton_frcnn.client import TritonDetector
from detection.runtime import for_version
from export import parity
from export.triton_config import parse

from serve.server import NGC_RUNTIMES

from .conftest import ROOT, SAMPLES


@pytest.mark.slow
def test_export_writes_an_fp32_ir_that_passed_parity(exported_openvino):
    version_dir = exported_openvino.version_dir
    assert (version_dir / 'model.xml').exists()
    # fp32 weights: about as large as the ONNX graph's, not half
    onnx_size = (version_dir.parent.parent / 'faster_rcnn_detector' / '1' /
                 'model.onnx').stat().st_size
    assert (version_dir / 'model.bin').stat().st_size > 0.9 * onnx_size
    assert min(m.fraction for m in exported_openvino.matches) >= 0.95
    meta = json.loads((version_dir / 'metadata.json').read_text())
    assert meta['file'] == 'model.xml'
    assert meta['openvino'] == {'INFERENCE_PRECISION_HINT': 'f32',
                                'PERFORMANCE_HINT': 'LATENCY'}
    config = parse((version_dir.parent / 'config.pbtxt').read_text())
    assert config.backend == 'openvino'
    # only what NGC's openvino backend reads; the precision comes from the
    # image's plugins.xml
    assert set(config.parameters) == {'INFERENCE_NUM_THREADS', 'PERFORMANCE_HINT'}


def plugin_defaults(plugins_xml: Path) -> dict:
    """The CPU plugin's properties in an OpenVINO plugins.xml."""
    root = ElementTree.parse(plugins_xml).getroot()
    (cpu,) = [p for p in root.iter('plugin') if p.get('name') == 'CPU']
    return {p.get('key'): p.get('value') for p in cpu.iter('property')}


def test_the_image_and_the_stand_in_give_openvino_the_checked_precision():
    """What the parity check compiled with reaches NGC's OpenVINO as the
    CPU plugin's default (the backend's own plugins.xml, replaced by the
    image), and the local stand-in's OpenVINO the same way."""
    from mmengine import Config

    from export.formats import FORMATS
    checked = Config.fromfile(str(FORMATS['openvino'].deploy_config_path)
                              ).openvino_config
    plugins = ROOT / 'deploy' / 'openvino-plugins.xml'
    assert plugin_defaults(plugins) == {
        'INFERENCE_PRECISION_HINT': checked['INFERENCE_PRECISION_HINT']}
    assert ('COPY deploy/openvino-plugins.xml '
            '/opt/tritonserver/backends/openvino/plugins.xml') in (
        ROOT / 'deploy' / 'Dockerfile').read_text()
    local = NGC_RUNTIMES / 'openvino' / 'libs' / 'plugins.xml'
    assert local.read_bytes() == plugins.read_bytes()


@pytest.mark.slow
def test_this_cpu_would_compute_the_ir_in_bf16_unless_told(exported_openvino):
    """Why the plugin default matters here: compiled with no precision, as
    NGC's backend compiles it, the IR gives other detections than in f32."""
    import openvino as ov

    from detection.preprocess import batch, decode, prepare
    version_dir = exported_openvino.version_dir
    inputs = batch([prepare(decode(SAMPLES[1].read_bytes()),
                            for_version(version_dir).params)])
    core = ov.Core()
    model = core.read_model(str(version_dir / 'model.xml'))

    def dets(properties):
        compiled = core.compile_model(model, 'CPU', properties)
        if 'INFERENCE_PRECISION_HINT' not in properties and compiled \
                .get_property('INFERENCE_PRECISION_HINT') != ov.Type.bf16:
            pytest.skip('this CPU computes f32 by default')
        outputs = compiled({'input': inputs['input'],
                            'img_shape': inputs['img_shape']})
        return next(v for p, v in outputs.items() if p.any_name == 'dets')
    assert not np.array_equal(dets({}),
                              dets({'INFERENCE_PRECISION_HINT': 'f32'}))


@pytest.mark.slow
def test_openvino_equals_onnxruntime_in_process(exported_openvino,
                                                onnx_detector, unseen_images):
    openvino = for_version(exported_openvino.version_dir)
    for path in unseen_images:
        a, b = openvino(path), onnx_detector(path)
        match = parity.match(b, a, path.name)
        assert match.fraction >= 0.95, match


@pytest.mark.native
@pytest.mark.slow
def test_served_openvino_matches_inference_detector(
        exported_openvino, grpc_url, mmdet_model, unseen_images):
    local = for_version(exported_openvino.version_dir)
    with TritonDetector(grpc_url, 'faster_rcnn_openvino', wait=60) as det:
        for path in SAMPLES[:2] + unseen_images:
            served = det(path)
            match = parity.match(parity.mmdet_detections(mmdet_model, path),
                                 served, path.name)
            assert match.fraction >= 0.95, match
            expected = local(path)
            np.testing.assert_allclose(served.boxes, expected.boxes, atol=0.5)
            np.testing.assert_array_equal(served.labels, expected.labels)


@pytest.mark.native
@pytest.mark.slow
def test_openvino_under_concurrent_load_answers_every_request_exactly(
        exported_openvino, grpc_url, unseen_images):
    """Twelve clients at once on images of four sizes: every request is
    answered with what the image gets alone (NGC's openvino backend fails an
    execution whose batch is not the model's, so this config runs one image
    an execution, and one request of two images is refused by name)."""
    from concurrent.futures import ThreadPoolExecutor

    from .conftest import png, photo_like, raw_request
    assert parse((exported_openvino.version_dir.parent / 'config.pbtxt')
                 .read_text()).max_batch_size == 1
    with TritonDetector(grpc_url, 'faster_rcnn_openvino', wait=60) as det:
        alone = {path: det(path) for path in unseen_images}
        with ThreadPoolExecutor(12) as pool:
            together = list(pool.map(det, unseen_images * 6))
    for path, got in zip(unseen_images * 6, together):
        np.testing.assert_array_equal(got.boxes, alone[path].boxes)
        np.testing.assert_array_equal(got.scores, alone[path].scores)
    images = [png(photo_like(300, 200, s)) for s in (1, 2)]
    with pytest.raises(Exception, match='batch-size must be <= 1'):
        raw_request(grpc_url, images, model='faster_rcnn_openvino')
