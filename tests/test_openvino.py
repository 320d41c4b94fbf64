"""The openvino format: the same traced graph as an OpenVINO IR, exact to
mmdet, served through the openvino backend."""
from __future__ import annotations

import json

import numpy as np

from triton_frcnn.client import TritonDetector
from detection.runtime import for_version
from export import parity
from export.triton_config import parse

from .conftest import SAMPLES


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
    assert meta['openvino']['INFERENCE_PRECISION_HINT'] == 'f32'
    config = parse((version_dir.parent / 'config.pbtxt').read_text())
    assert config.backend == 'openvino'
    assert config.parameters['INFERENCE_PRECISION_HINT'].string_value == 'f32'


def test_openvino_equals_onnxruntime_in_process(exported_openvino,
                                                onnx_detector, unseen_images):
    openvino = for_version(exported_openvino.version_dir)
    for path in unseen_images:
        a, b = openvino(path), onnx_detector(path)
        match = parity.match(b, a, path.name)
        assert match.fraction >= 0.95, match


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
