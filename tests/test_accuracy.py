"""Accuracy by COCO mAP: the committed demo detector, PyTorch vs the fp32
export (in process and served) and the int8 and fp16 exports (in process and
served)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from triton_frcnn.client import TritonDetector

from detection.runtime import for_version
from evaluation.__main__ import run_path
from export.errors import ExportError
from export.parity import mmdet_detections
from export.pipeline import run
from export.request import Accuracy, Export, Request

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG, ROOT, SAMPLES


@pytest.mark.native
@pytest.mark.slow
def test_exported_and_served_map(val_split, exported_demo, exported_demo_int8,
                                 exported_demo_fp16, grpc_url):
    """fp32 equals PyTorch (within 0.2 AP); int8 and fp16 stay within the
    1.0 and 0.3 points their export gates allow of the fp32 export."""
    from export import model as detector_model
    model, _ = detector_model.load(DEMO_CONFIG, DEMO_CHECKPOINT)
    classes = model.dataset_meta['classes']
    with TritonDetector(grpc_url, 'demo') as served, \
            TritonDetector(grpc_url, 'demo_int8') as served_int8, \
            TritonDetector(grpc_url, 'demo_fp16') as served_fp16:
        runs = {'pytorch': run_path('pytorch', val_split,
                                    lambda p: mmdet_detections(model, p)),
                'onnxruntime': run_path('onnxruntime', val_split, exported_demo),
                'triton': run_path('triton', val_split, served, 2),
                'onnxruntime int8': run_path('onnxruntime int8', val_split,
                                             for_version(exported_demo_int8)),
                'triton int8': run_path('triton int8', val_split, served_int8, 2),
                'onnxruntime fp16': run_path('onnxruntime fp16', val_split,
                                             for_version(exported_demo_fp16)),
                'triton fp16': run_path('triton fp16', val_split, served_fp16, 2)}
    stats = {name: val_split.evaluate(run['detections'], classes)
             for name, run in runs.items()}
    assert stats['pytorch']['AP'] >= 50, stats  # a trained model, not noise
    for name, bound in (('onnxruntime', 0.2), ('triton', 0.2),
                        ('onnxruntime int8', 1.0), ('triton int8', 1.0)):
        for metric in ('AP', 'AP50', 'AP75'):
            assert abs(stats[name][metric] - stats['pytorch'][metric]) <= bound, \
                (name, stats)
    assert stats['onnxruntime']['AP'] - stats['onnxruntime fp16']['AP'] <= 0.3
    # serving adds nothing to a reduced precision's error: the same graph,
    # the same numbers
    assert stats['triton int8'] == stats['onnxruntime int8']
    assert stats['triton fp16'] == stats['onnxruntime fp16']


NOT_ANNOTATIONS = [
    ('{"info": "results, not annotations"}',
     r'is not a COCO annotation file: it has no images nor categories list$'),
    ('[1, 2]', r'is not a readable COCO annotation file \(AssertionError: '),
    ('no json here', r'is not a readable COCO annotation file \(JSONDecodeError: '),
    ('{"images": [], "annotations": [], "categories": []}', r'lists no images$'),
]


@pytest.mark.parametrize('content,message', NOT_ANNOTATIONS)
def test_a_file_that_is_not_annotations_is_refused_in_one_line(
        tmp_path, content, message):
    """By the export's mAP gate before anything is written, and by
    ``python -m evaluation`` with exit code 1 and no report."""
    ann = tmp_path / 'ann.json'
    ann.write_text(content)
    repo = tmp_path / 'repo'
    named = re.escape(str(ann)) + ' ' + message
    with pytest.raises(ExportError, match='^accuracy gate: ' + named):
        run(Request(
            Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT,
                   images=SAMPLES, format='onnxruntime-fp16', repository=repo),
            accuracy=Accuracy(accuracy_ann=ann, accuracy_images=tmp_path)))
    assert not repo.exists() or list(repo.iterdir()) == []
    out = tmp_path / 'eval.json'
    done = subprocess.run(
        [sys.executable, '-m', 'evaluation', '-c', DEMO_CONFIG, '-w',
         DEMO_CHECKPOINT, '--ann', ann, '--images', tmp_path, '-r', repo,
         '--out', out], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    assert re.fullmatch('eval: error: ' + named.rstrip('$') + r'.*\n',
                        done.stderr), done.stderr
    assert not out.exists()
