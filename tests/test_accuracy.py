"""Accuracy by COCO mAP: the committed demo detector, PyTorch vs the fp32
export (in process and served) and the int8 export (in process and served)."""
from __future__ import annotations

from triton_frcnn.client import TritonDetector
from detection.runtime import for_version
from evaluation.__main__ import run_path
from export.parity import mmdet_detections

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG


def test_exported_and_served_map(val_split, exported_demo, exported_demo_int8,
                                 grpc_url):
    """fp32 equals PyTorch (within 0.2 AP); int8 stays within the 1.0 point
    its export gate allows."""
    from export import model as detector_model
    model, _ = detector_model.load(DEMO_CONFIG, DEMO_CHECKPOINT)
    classes = model.dataset_meta['classes']
    with TritonDetector(grpc_url, 'demo') as served, \
            TritonDetector(grpc_url, 'demo_int8') as served_int8:
        runs = {'pytorch': run_path('pytorch', val_split,
                                    lambda p: mmdet_detections(model, p)),
                'onnxruntime': run_path('onnxruntime', val_split, exported_demo),
                'triton': run_path('triton', val_split, served, 2),
                'onnxruntime int8': run_path('onnxruntime int8', val_split,
                                             for_version(exported_demo_int8)),
                'triton int8': run_path('triton int8', val_split, served_int8, 2)}
    stats = {name: val_split.evaluate(run['detections'], classes)
             for name, run in runs.items()}
    assert stats['pytorch']['AP'] >= 50, stats  # a trained model, not noise
    for name, bound in (('onnxruntime', 0.2), ('triton', 0.2),
                        ('onnxruntime int8', 1.0), ('triton int8', 1.0)):
        for metric in ('AP', 'AP50', 'AP75'):
            assert abs(stats[name][metric] - stats['pytorch'][metric]) <= bound, \
                (name, stats)
    # serving adds nothing to int8's error: the same graph, the same numbers
    assert stats['triton int8'] == stats['onnxruntime int8']
