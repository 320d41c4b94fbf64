"""The gate for reduced precision: mAP on an annotated set, fp32 vs int8,
fp16 or TF32.

Exactness cannot hold once weights are rounded, so the graph is judged
the way its users would judge it: COCO box AP of both graphs, run the same way
(ONNX Runtime on the served preprocessing, on the device it will run on), on
images it was not calibrated on. A model that scores (almost) nothing in fp32
on the set cannot be judged there, so that is refused too rather than passed
vacuously.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Tuple

from detection.preprocess import Preprocessing
from detection.runtime import OnnxDetector
from detection.coco import CocoSplit

from .errors import ExportError

MIN_REFERENCE_AP = 5.0
CPU = ('CPUExecutionProvider',)


@dataclass
class Gate:
    reference_ap: float
    candidate_ap: float
    images: int
    max_drop: float
    precision: str = 'int8'

    @property
    def drop(self) -> float:
        return self.reference_ap - self.candidate_ap

    def summary(self) -> str:
        return (f'AP {self.reference_ap:.2f} fp32 -> {self.candidate_ap:.2f} '
                f'{self.precision} ({-self.drop:+.2f} points, allowed '
                f'-{self.max_drop:.1f}) on {self.images} images')


def box_ap(model_path: Path, params: Preprocessing, split: CocoSplit,
           classes: Sequence[str], providers: Sequence = CPU) -> float:
    detector = OnnxDetector(model_path, params, providers)
    detections = {i: detector(split.path(i)) for i in split.image_ids}
    return split.evaluate(detections, classes)['AP']


def annotated_split(ann_file: Path, image_dir: Path, limit: int,
                    classes: Sequence[str]) -> CocoSplit:
    """The gate's images, refused before any export work when the model's
    classes are not the annotations' categories."""
    split = CocoSplit(ann_file, image_dir, limit)
    try:
        split.category_ids(classes)
    except ValueError as exc:
        raise ExportError(f'accuracy gate: {exc} ({ann_file})') from None
    return split


def check(reference: Path, candidate: Path, params: Preprocessing,
          split: CocoSplit, classes: Sequence[str], max_drop: float,
          precision: str = 'int8',
          providers: Tuple[Sequence, Sequence] = (CPU, CPU)) -> Gate:
    """``providers``: ONNX Runtime's for the reference and the candidate
    (TF32 differs from fp32 only in them)."""
    gate = Gate(box_ap(reference, params, split, classes, providers[0]),
                box_ap(candidate, params, split, classes, providers[1]),
                len(split.image_ids), max_drop, precision)
    if gate.reference_ap < MIN_REFERENCE_AP:
        raise ExportError(
            f'accuracy gate: the fp32 model scores {gate.reference_ap:.2f} AP '
            f'on these annotations (< {MIN_REFERENCE_AP}), so they cannot '
            f'judge its {gate.precision} version; nothing was written')
    if gate.drop > max_drop:
        raise ExportError(f'accuracy gate failed: {gate.summary()}; nothing '
                          'was written')
    return gate
