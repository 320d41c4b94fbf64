"""The thin client of the Triton-served Faster R-CNN.

    from triton_frcnn.client import TritonDetector
    det = TritonDetector('localhost:8001', 'faster_rcnn')
    result = det('demo.jpg')

Names are loaded on first use, so ``import triton_frcnn.client`` costs
nothing and pulls in neither gRPC nor HTTP until a detector is made.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    'TritonDetector': '.detector', 'AsyncTritonDetector': '.aio',
    'ServerUnavailable': '.protocol', 'Tls': '.protocol', 'Retry': '.retry',
    'ServerBusy': '.retry',
    'Detections': '..wire',
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
