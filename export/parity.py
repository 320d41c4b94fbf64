"""Does the exported graph detect what mmdet's ``inference_detector`` does?

A reference detection counts as reproduced when a candidate of the same class
lies within ``box_tol`` pixels on every coordinate and ``score_tol`` in score.
Each candidate is used once. The bar is a fraction of the reference's top-k,
because a near-tie in NMS can legitimately swap one box for another.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List

import numpy as np

from detection.postprocess import Detections


@dataclass
class Match:
    name: str
    reference: int
    matched: int
    max_box_diff: float
    max_score_diff: float

    @property
    def fraction(self) -> float:
        return self.matched / self.reference if self.reference else 1.0


def match(reference: Detections, candidate: Detections, name: str = '',
          top_k: int = 100, box_tol: float = 0.5,
          score_tol: float = 1e-3) -> Match:
    ref = reference.top(top_k)
    used = np.zeros(len(candidate), bool)
    matched, box_diffs, score_diffs = 0, [0.0], [0.0]
    for box, score, label in zip(ref.boxes, ref.scores, ref.labels):
        box_diff = np.abs(candidate.boxes - box).max(axis=1, initial=0)
        score_diff = np.abs(candidate.scores - score)
        ok = (~used & (candidate.labels == label) & (box_diff <= box_tol)
              & (score_diff <= score_tol))
        if ok.any():
            best = np.flatnonzero(ok)[np.argmin(box_diff[ok])]
            used[best] = True
            matched += 1
            box_diffs.append(float(box_diff[best]))
            score_diffs.append(float(score_diff[best]))
    return Match(name, len(ref), matched, max(box_diffs), max(score_diffs))


def mmdet_detections(model, image: Path) -> Detections:
    """``inference_detector`` on a file path, as the seed tutorial calls it."""
    from mmdet.apis import inference_detector
    result = inference_detector(model, str(image)).pred_instances
    return Detections(boxes=result.bboxes.numpy().astype(np.float32),
                      scores=result.scores.numpy().astype(np.float32),
                      labels=result.labels.numpy().astype(np.int64))


def summary(matches: Iterable[Match]) -> str:
    rows: List[Match] = list(matches)
    total = sum(m.reference for m in rows)
    hit = sum(m.matched for m in rows)
    worst = min(rows, key=lambda m: m.fraction)
    return (f'{hit}/{total} reference detections reproduced over {len(rows)} '
            f'images (worst {worst.name}: {worst.matched}/{worst.reference}); '
            f'max box diff {max(m.max_box_diff for m in rows):.2e} px, '
            f'max score diff {max(m.max_score_diff for m in rows):.2e}')
