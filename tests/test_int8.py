"""The int8 export: integer kernels really run, and the mAP gate refuses."""
from __future__ import annotations

import json
from collections import Counter

import onnx
import onnxruntime as ort
import pytest

from detection.preprocess import Preprocessing
from export import accuracy
from export.errors import ExportError
from export.pipeline import run
from export.request import Accuracy, Export, Request

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG, SAMPLES, SMALL_CONFIG


def optimised_ops(model_path, tmp_path) -> Counter:
    """The op types ONNX Runtime actually executes after its graph fusions."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / 'optimised.onnx')
    ort.InferenceSession(str(model_path), options,
                         providers=['CPUExecutionProvider'])
    graph = onnx.load(str(tmp_path / 'optimised.onnx')).graph
    return Counter(n.op_type for n in graph.node)


@pytest.mark.slow
def test_every_convolution_runs_as_integer(exported_demo, exported_demo_int8,
                                          tmp_path):
    """QDQ that ORT does not fuse runs float convolutions plus extra
    (de)quantisation, slower than fp32; this is what quant_pre_process buys."""
    fp32_convs = Counter(n.op_type for n in onnx.load(
        str(exported_demo_int8.parent.parent / 'demo_detector' / '1' /
            'model.onnx')).graph.node)['Conv']
    ops = optimised_ops(exported_demo_int8 / 'model.onnx', tmp_path)
    assert ops['QLinearConv'] == fp32_convs, ops
    assert ops['Conv'] + ops['FusedConv'] == 0, ops


@pytest.mark.slow
def test_metadata_records_calibration_and_gate(exported_demo_int8):
    meta = json.loads((exported_demo_int8 / 'metadata.json').read_text())
    assert meta['format'] == 'onnxruntime-int8'
    assert meta['precision'] == 'int8'
    assert meta['calibration']['images'] == 16
    assert meta['calibration']['per_channel'] is True
    gate = meta['accuracy']
    assert gate['images'] == 60 and gate['max_drop'] == 1.0
    assert gate['ap_fp32'] >= 50
    assert gate['ap_fp32'] - gate['ap_int8'] <= 1.0


@pytest.mark.slow
def test_gate_refuses_a_larger_drop_than_allowed(exported_demo,
                                                 exported_demo_int8, few_val):
    """Demanding that int8 beat fp32 by 5 points must fail, with numbers."""
    meta = json.loads((exported_demo_int8 / 'metadata.json').read_text())
    params = Preprocessing.from_dict(meta['preprocessing'])
    fp32 = exported_demo_int8.parent.parent / 'demo_detector' / '1' / 'model.onnx'
    with pytest.raises(ExportError, match=r'accuracy gate failed: AP [\d.]+ '
                       r'fp32 -> [\d.]+ .*allowed -(-5.0|5.0)'):
        accuracy.check(accuracy.Run(fp32, params),
                       accuracy.Run(exported_demo_int8 / 'model.onnx', params),
                       few_val, meta['classes'], max_drop=-5.0)


def test_int8_without_calibration_or_annotations_is_refused(tmp_path):
    with pytest.raises(ExportError, match='needs calibration images'):
        run(Request(
            Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT,
                   images=SAMPLES, format='onnxruntime-int8',
                   repository=tmp_path)))
    assert list(tmp_path.iterdir()) == []


def test_annotations_of_other_classes_are_refused_before_export(
        random_checkpoint, val_split, tmp_path):
    """The COCO-class R50 cannot be judged on the shapes dataset: refused
    after loading, before any tracing, and nothing is written."""
    with pytest.raises(ExportError, match=(
            r"^accuracy gate: 80 of the model's 80 classes \(person, bicycle, "
            r"car, \.\.\. 77 more\) are not categories of the annotations "
            r"\(circle, rectangle, triangle, \.\.\. 2 more\) in .*: pass "
            r"--accuracy-ann COCO.json --accuracy-images DIR \(make export "
            r"EVAL_ANN=COCO.json EVAL_IMAGES=DIR, with CALIBRATION=DIR for "
            r"int8\)$")):
        run(Request(
            Export(config=SMALL_CONFIG, checkpoint=random_checkpoint,
                   images=SAMPLES, format='onnxruntime-int8',
                   repository=tmp_path),
            accuracy=Accuracy(calibration=SAMPLES,
                              accuracy_ann=val_split.ann_file,
                              accuracy_images=val_split.image_dir)))
    assert list(tmp_path.iterdir()) == []
