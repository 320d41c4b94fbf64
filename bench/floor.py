"""The compute floor: the model's FLOPs and this machine's measured peak."""
from __future__ import annotations

import time
from typing import Dict, Tuple

import torch


def model_gflops(model, hw: Tuple[int, int]) -> float:
    """GFLOP (2 x multiply-adds) for one image padded to ``hw``.

    Backbone, neck and RPN head are counted by mmengine's FlopAnalyzer on a
    real forward; the R-CNN head's fully connected layers are counted per
    proposal for ``max_per_img`` proposals, as mmdet runs them.
    """
    from mmengine.analysis import FlopAnalyzer

    class Dense(torch.nn.Module):
        def __init__(self, detector):
            super().__init__()
            self.detector = detector

        def forward(self, x):
            return self.detector.rpn_head(self.detector.extract_feat(x))

    with torch.no_grad():
        analyzer = FlopAnalyzer(Dense(model), (torch.zeros(1, 3, *hw),))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        dense = analyzer.total()
    linear = sum(m.in_features * m.out_features
                 for m in model.roi_head.bbox_head.modules()
                 if isinstance(m, torch.nn.Linear))
    proposals = model.test_cfg.rpn.max_per_img
    return 2 * (dense + proposals * linear) / 1e9


def _rate(flop: float, call, seconds: float) -> float:
    call()  # warm-up
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        runs += 1
    return flop * runs / (time.perf_counter() - start) / 1e9


def peak_gflops(seconds: float = 2.0) -> Dict[str, float]:
    """fp32 GFLOP/s of one large matmul and one large 3x3 convolution."""
    with torch.no_grad():
        n = 2048
        a, b = torch.randn(n, n), torch.randn(n, n)
        matmul = _rate(2 * n ** 3, lambda: a @ b, seconds)
        x = torch.randn(1, 256, 100, 168)
        conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).eval()
        flop = 2 * 256 * 256 * 9 * 100 * 168
        conv_rate = _rate(flop, lambda: conv(x), seconds)
    return {'matmul': round(matmul, 1), 'conv3x3': round(conv_rate, 1)}
