"""COCO box mAP with pycocotools, for detections from any of the three paths."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Dict, List, Sequence

from ground.cli import Failure
from triton_frcnn.wire import Detections

METRICS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')


class AnnotationError(Failure, ValueError):
    """The file is not annotations in COCO's detection format."""


class CocoSplit:
    """A COCO annotation file and its images, in a stable order."""

    def __init__(self, ann_file: Path, image_dir: Path, limit: int = 0):
        self.coco = read_coco(ann_file)
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        ids = sorted(self.coco.getImgIds())
        self.image_ids = ids[:limit] if limit else ids

    def path(self, image_id: int) -> Path:
        return self.image_dir / self.coco.imgs[image_id]['file_name']

    def category_ids(self, classes: Sequence[str]) -> List[int]:
        """Model label index -> this file's category id, matched by name (so
        COCO's sparse ids 1..90 and the synthetic set's 0..4 both work)."""
        by_name = {c['name']: c['id'] for c in self.coco.dataset['categories']}
        missing = [c for c in classes if c not in by_name]
        if missing:
            raise ValueError(
                f'{len(missing)} of the model\'s {len(classes)} classes '
                f'({few(missing)}) are not categories of the annotations '
                f'({few(list(by_name))})')
        return [by_name[c] for c in classes]

    def evaluate(self, detections: Dict[int, Detections],
                 classes: Sequence[str]) -> Dict[str, float]:
        """AP, AP50, AP75, APs/m/l in points (0-100) over ``image_ids``."""
        from pycocotools.cocoeval import COCOeval
        cat_ids = self.category_ids(classes)
        rows = []
        for image_id, dets in detections.items():
            for box, score, label in zip(dets.boxes, dets.scores, dets.labels):
                x1, y1, x2, y2 = (float(v) for v in box)
                rows.append({'image_id': image_id,
                             'category_id': cat_ids[int(label)],
                             'bbox': [x1, y1, x2 - x1, y2 - y1],
                             'score': float(score)})
        if not rows:
            return {m: 0.0 for m in METRICS}
        with contextlib.redirect_stdout(io.StringIO()):
            results = self.coco.loadRes(rows)
            evaluator = COCOeval(self.coco, results, 'bbox')
            evaluator.params.imgIds = list(self.image_ids)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return {m: round(float(v) * 100, 2)
                for m, v in zip(METRICS, evaluator.stats[:6])}


def read_coco(ann_file: Path):
    """pycocotools' index of ``ann_file``; pycocotools itself fails on a
    file of another shape with a TypeError or an assertion deep inside."""
    from pycocotools.coco import COCO
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann_file))
    except (OSError, ValueError, TypeError, KeyError, AssertionError) as exc:
        raise AnnotationError(f'{ann_file} is not a readable COCO annotation '
                              f'file ({type(exc).__name__}: '
                              f'{str(exc).splitlines()[0] if str(exc) else ""})'
                              ) from None
    missing = [key for key in ('images', 'categories')
               if not isinstance(coco.dataset.get(key), list)]
    if missing:
        raise AnnotationError(f'{ann_file} is not a COCO annotation file: it '
                              f'has no {" nor ".join(missing)} list')
    if not coco.dataset['images']:
        raise AnnotationError(f'{ann_file} lists no images')
    return coco


def few(names: Sequence[str], shown: int = 3) -> str:
    """The first names of a list, and how many more."""
    head = ', '.join(names[:shown])
    return head + (f', ... {len(names) - shown} more' if len(names) > shown else '')
