"""The fp16 and TF32 exports: opt-in reduced precisions, each judged by mAP
against the fp32 graph before it is published."""
from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest

from detection.preprocess import Preprocessing
from export import accuracy
from export.capacity import Capacity
from export.device import Device
from export.errors import ExportError
from export.formats import FORMATS
from export.pipeline import run
from export.request import Accuracy, Export, Placement, Request
from export.triton_config import detector, parse, place, to_text
from triton_frcnn.client import TritonDetector

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG, ROOT, SAMPLES
from .test_gpu import cuda_options, no_cuda
from .test_repository import INPUTS, OUTPUTS


@pytest.mark.slow
def test_fp16_halves_the_weights_and_keeps_the_wire(exported_demo,
                                                    exported_demo_fp16):
    graph = onnx.load(str(exported_demo_fp16 / 'model.onnx')).graph
    weights = {i.name: i.data_type for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == 'Conv']
    assert convs and all(weights[n.input[1]] == onnx.TensorProto.FLOAT16
                         for n in convs)
    assert {t.type.tensor_type.elem_type for t in graph.input
            if t.name == 'input'} == {onnx.TensorProto.FLOAT}
    fp32 = onnx.load(str(exported_demo_fp16.parent.parent / 'demo_detector'
                         / '1' / 'model.onnx')).graph
    assert [(t.name, t.type.tensor_type.elem_type) for t in graph.output] == [
        (t.name, t.type.tensor_type.elem_type) for t in fp32.output]


@pytest.mark.slow
def test_fp16_metadata_records_conversion_and_gate(exported_demo_fp16):
    meta = json.loads((exported_demo_fp16 / 'metadata.json').read_text())
    assert (meta['format'], meta['precision']) == ('onnxruntime-fp16', 'fp16')
    assert meta['fp16']['keep_io_types'] is True
    assert {'RoiAlign', 'NonMaxSuppression'} <= set(meta['fp16']['kept_fp32'])
    gate = meta['accuracy']
    assert gate['images'] == 60 and gate['max_drop'] == 0.3
    assert gate['device'] == 'cpu' and gate['ap_fp32'] >= 50
    assert gate['ap_fp32'] - gate['ap_fp16'] <= 0.3
    assert len(meta['parity']) == 2  # of the fp32 graph, as int8's


@pytest.mark.slow
def test_fp16_is_served_beside_fp32(exported_demo_fp16, unseen_images,
                                    grpc_url):
    """The served fp16 graph (NGC's ONNX Runtime) answers as the same graph
    does in process (the project's), every detection within parity's
    tolerance."""
    from detection.runtime import for_version
    from export import parity
    local = for_version(exported_demo_fp16)
    with TritonDetector(grpc_url, 'demo_fp16') as served:
        for path in unseen_images[:2]:
            want, got = local(path), served.infer_bytes(path.read_bytes())
            match = parity.match(want, got, path.name)
            assert match.matched == match.reference == len(got) > 0, match


@pytest.mark.slow
def test_the_fp16_gate_refuses_a_larger_drop_than_allowed(
        exported_demo, exported_demo_fp16, few_val):
    meta = json.loads((exported_demo_fp16 / 'metadata.json').read_text())
    fp32 = exported_demo_fp16.parent.parent / 'demo_detector' / '1' / 'model.onnx'
    params = Preprocessing.from_dict(meta['preprocessing'])
    with pytest.raises(ExportError, match=r'accuracy gate failed: AP [\d.]+ '
                       r'fp32 -> [\d.]+ fp16 .*allowed -(-5.0|5.0)'):
        accuracy.check(accuracy.Run(fp32, params),
                       accuracy.Run(exported_demo_fp16 / 'model.onnx', params),
                       few_val, meta['classes'], max_drop=-5.0,
                       label='fp16')


def test_fp16_without_annotations_is_refused(tmp_path):
    with pytest.raises(ExportError) as err:
        run(Request(
            Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT,
                   images=SAMPLES, format='onnxruntime-fp16',
                   repository=tmp_path)))
    assert str(err.value) == (
        'format onnxruntime-fp16 needs an annotated set for its mAP gate '
        '(--accuracy-ann, --accuracy-images)')
    assert list(tmp_path.iterdir()) == []


def test_tf32_needs_a_cuda_device_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, '-m', 'export', '-c', str(DEMO_CONFIG), '-w',
         str(DEMO_CHECKPOINT), '-f', 'onnxruntime-tf32', '-r', str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 1
    assert done.stderr == (
        'export: error: format onnxruntime-tf32 runs fp32 graphs with TF32 '
        'arithmetic, which only a CUDA GPU has: export it with '
        '--device cuda[:N]\n')
    assert list(tmp_path.iterdir()) == []


def test_a_tf32_detector_runs_with_tf32_on_its_gpu():
    capacity = Capacity(16, gpu=True)
    config = parse(to_text(detector(
        'det', FORMATS['onnxruntime-tf32'], INPUTS, OUTPUTS, [(800, 1344)],
        capacity, device=Device('cuda'))))
    assert 'cudnn_conv_algo_search' not in config.parameters
    assert cuda_options(config) == {'use_tf32': '1'}
    place(config, capacity, Device('cuda'))  # placed again: exact fp32
    assert cuda_options(config) == {'use_tf32': '0'}


@pytest.mark.skipif(bool(no_cuda()), reason=no_cuda() or 'CUDA is here')
def test_tf32_is_gated_on_the_gpu(val_split, tmp_path):
    """Runs where CUDA is: TF32 judged on the card against fp32 there."""
    result = run(Request(
        Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT, name='demo',
               format='onnxruntime-tf32',
               images=[val_split.path(i) for i in val_split.image_ids[:2]],
               repository=tmp_path),
        placement=Placement(device='cuda'),
        accuracy=Accuracy(accuracy_ann=val_split.ann_file,
                          accuracy_images=val_split.image_dir)))
    gate = json.loads((result.version_dir / 'metadata.json').read_text())[
        'accuracy']
    assert gate['device'] == 'cuda:0'
    assert gate['ap_fp32'] - gate['ap_tf32'] <= 0.3
