"""From the detector's padded outputs to boxes in original-image pixels."""
from __future__ import annotations

from typing import Tuple

import numpy as np
from triton_frcnn.wire import Detections

# The exported graph's outputs: dets [B, K, 5] (x1, y1, x2, y2, score in
# resized-image pixels) and labels [B, K] (-1 in empty slots).
DETECTOR_OUTPUTS = ('dets', 'labels')


def postprocess(dets: np.ndarray, labels: np.ndarray,
                scale_factor: Tuple[float, float],
                ori_shape: Tuple[int, int],
                score_thr: float = 0.0) -> Detections:
    """Drop empty slots, map back to the original image, clip to it.

    Scaling multiplies by ``1 / scale`` in float32, as mmdet's
    ``scale_boxes`` does, so results agree to the last bit.
    """
    keep = (labels >= 0) & (dets[:, 4] > score_thr)
    inv = np.float32([1 / scale_factor[0], 1 / scale_factor[1]] * 2)
    boxes = dets[keep, :4].astype(np.float32) * inv
    height, width = ori_shape
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    return Detections(boxes=boxes,
                      scores=dets[keep, 4].astype(np.float32),
                      labels=labels[keep].astype(np.int64))
