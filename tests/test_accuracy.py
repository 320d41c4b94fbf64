"""Accuracy parity by COCO mAP: the committed demo detector, three ways."""
from __future__ import annotations

import pytest

from client import TritonDetector
from evaluation.__main__ import run_path
from evaluation.coco import CocoSplit
from export.parity import mmdet_detections

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG


@pytest.fixture(scope='session')
def val_split(tmp_path_factory):
    """The first 60 images of the val split (the generator is sequential, so
    they are the same images ``make eval`` scores first)."""
    from synthetic.generate import write_split
    out = tmp_path_factory.mktemp('synthetic')
    ann = write_split(out, 'val', 60, seed=1)
    return CocoSplit(ann, out / 'val')


def test_exported_and_served_map_equal_pytorch(val_split, exported_demo,
                                               grpc_url):
    from export import model as detector_model
    model, _ = detector_model.load(DEMO_CONFIG, DEMO_CHECKPOINT)
    classes = model.dataset_meta['classes']
    onnx = exported_demo
    with TritonDetector(grpc_url, 'demo') as served:
        runs = {'pytorch': run_path('pytorch', val_split,
                                    lambda p: mmdet_detections(model, p)),
                'onnxruntime': run_path('onnxruntime', val_split, onnx),
                'triton': run_path('triton', val_split, served, 2)}
    stats = {name: val_split.evaluate(run['detections'], classes)
             for name, run in runs.items()}
    assert stats['pytorch']['AP'] >= 50, stats  # a trained model, not noise
    for name in ('onnxruntime', 'triton'):
        for metric in ('AP', 'AP50', 'AP75'):
            assert abs(stats[name][metric] - stats['pytorch'][metric]) <= 0.2, stats
