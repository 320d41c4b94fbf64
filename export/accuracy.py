"""The gate for what is no longer exact: mAP on an annotated set, the fp32
graph on mmdet's padding vs the model as served (int8, fp16 or TF32, and/or
padded to a canvas).

Exactness cannot hold once weights are rounded or images padded further, so
the model is judged the way its users would judge it: COCO box AP of both,
run in process on the device it will run on, on images it was not
calibrated on. A model that scores (almost) nothing in fp32
on the set cannot be judged there, so that is refused too rather than passed
vacuously.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from detection.coco import AnnotationError, CocoSplit
from detection.preprocess import Preprocessing
from detection.runtime import runner
from ground.files import sha256

from .errors import ExportError

MIN_REFERENCE_AP = 5.0
CPU = ('CPUExecutionProvider',)


@dataclass
class Gate:
    reference_ap: float
    candidate_ap: float
    images: int
    max_drop: float
    label: str = 'int8'  # what the candidate is: its precision, its canvas
    reference_ms: float = 0.0  # per image, decoding to boxes, in process
    candidate_ms: float = 0.0

    @property
    def drop(self) -> float:
        return self.reference_ap - self.candidate_ap

    def summary(self) -> str:
        return (f'AP {self.reference_ap:.2f} fp32 -> {self.candidate_ap:.2f} '
                f'{self.label} ({-self.drop:+.2f} points, allowed '
                f'-{self.max_drop:.1f}), {self.reference_ms:.1f} -> '
                f'{self.candidate_ms:.1f} ms an image, on {self.images} '
                'images')


@dataclass(frozen=True)
class Run:
    """A model and how it is run: its preprocessing, ONNX Runtime's
    providers (TF32 differs from fp32 only in them), OpenVINO's settings
    for an IR."""
    model: Path
    params: Preprocessing
    providers: Sequence = CPU
    openvino: Optional[Dict[str, str]] = None


def detected(runs: Sequence[Run],
             split: CocoSplit) -> List[Tuple[dict, float]]:
    """Each run's detections by image id and seconds in all, the runs taking
    each image in turn (so that a busy moment of the host costs them
    alike)."""
    detectors = [runner(r.model, r.params, r.openvino, r.providers)
                 for r in runs]
    found: List[dict] = [{} for _ in runs]
    seconds = [0.0] * len(runs)
    for image_id in split.image_ids:
        data = split.path(image_id).read_bytes()
        for k, detector in enumerate(detectors):
            start = time.perf_counter()
            found[k][image_id] = detector(data)
            seconds[k] += time.perf_counter() - start
    return list(zip(found, seconds))


def scored(found: Tuple[dict, float], split: CocoSplit,
           classes: Sequence[str]) -> Tuple[float, float]:
    """AP and milliseconds an image."""
    detections, seconds = found
    return (split.evaluate(detections, classes)['AP'],
            1000 * seconds / max(1, len(split.image_ids)))


def box_ap(runs: Sequence[Run], split: CocoSplit,
           classes: Sequence[str]) -> List[Tuple[float, float]]:
    """Each run's AP and milliseconds an image, taking images in turn."""
    return [scored(f, split, classes) for f in detected(runs, split)]


# The fp32 reference's detections, by what decides them: an export judges
# its graph more than once (fp16 and its GPU buckets), on the same images.
_REFERENCES: Dict[tuple, Tuple[dict, float]] = {}


def reference_detections(reference: Run, candidate: Run,
                         split: CocoSplit) -> List[Tuple[dict, float]]:
    """``detected`` for both, the reference's scored only once for the same
    graph bytes, preprocessing, providers and images."""
    key = (sha256(reference.model), repr(reference.params),
           repr(reference.openvino), repr(list(reference.providers)),
           str(split.ann_file), tuple(split.image_ids))
    if key in _REFERENCES:
        return [_REFERENCES[key], *detected([candidate], split)]
    both = detected([reference, candidate], split)
    _REFERENCES[key] = both[0]
    return both


def annotated_split(ann_file: Path, image_dir: Path, limit: int,
                    classes: Sequence[str]) -> CocoSplit:
    """The gate's images, refused before any export work when the model's
    classes are not the annotations' categories."""
    try:
        split = CocoSplit(ann_file, image_dir, limit)
        split.category_ids(classes)
    except AnnotationError as exc:
        raise ExportError(f'accuracy gate: {exc}') from None
    except ValueError as exc:
        raise ExportError(
            f'accuracy gate: {exc} in {ann_file}: the gate judges the model '
            'on an annotated set of its own classes: pass --accuracy-ann '
            'COCO.json --accuracy-images DIR (make export EVAL_ANN=COCO.json '
            'EVAL_IMAGES=DIR, with CALIBRATION=DIR for int8)') from None
    return split


def check(reference: Run, candidate: Run, split: CocoSplit,
          classes: Sequence[str], max_drop: float, label: str = 'int8') -> Gate:
    found = reference_detections(reference, candidate, split)
    (ref_ap, ref_ms), (ap, ms) = (scored(f, split, classes) for f in found)
    gate = Gate(ref_ap, ap, len(split.image_ids), max_drop, label, ref_ms, ms)
    if gate.reference_ap < MIN_REFERENCE_AP:
        raise ExportError(
            f'accuracy gate: the fp32 model scores {gate.reference_ap:.2f} AP '
            f'on these annotations (< {MIN_REFERENCE_AP}), so they cannot '
            f'judge its {gate.label} version; nothing was written')
    if gate.drop > max_drop:
        raise ExportError(f'accuracy gate failed: {gate.summary()}; nothing '
                          'was written')
    return gate
