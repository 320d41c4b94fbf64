"""``--out``: result files, each written so that a reader never sees half of
one, and a run that can be resumed."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List, Optional, Union

from ..files import write_atomic
from ..wire import Detections
from .draw import draw_detections
from .images import ImageLike, load_image


def coco_results(file_name: str, image_id: int, dets: Detections) -> List[dict]:
    """COCO results format (bbox as x, y, width, height), plus the file name
    and class name so the file is readable without the annotation file."""
    rows = []
    names = dets.names if dets.names is not None else [None] * len(dets)
    for box, score, label, name in zip(dets.boxes, dets.scores, dets.labels,
                                       names):
        x1, y1, x2, y2 = (round(float(v), 2) for v in box)
        rows.append({'image_id': image_id, 'file_name': file_name,
                     'category_id': int(label), 'category_name': name,
                     'bbox': [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                     'score': round(float(score), 5)})
    return rows


def write_json(path: Path, rows: Iterable[dict]) -> None:
    write_atomic(path, json.dumps(list(rows), indent=1))


def save_drawing(image: ImageLike, dets: Detections,
                 out_file: Optional[Union[str, Path]], score_thr: float):
    """The annotated PIL image, also written as a JPEG to ``out_file``
    unless that is None."""
    drawn = draw_detections(load_image(image), dets, score_thr)
    if out_file is not None:
        write_atomic(Path(out_file), lambda f: drawn.save(f, 'JPEG', quality=92))
    return drawn


class ResultFolder:
    """``<stem>.jpg`` and ``<stem>.json`` per image, and ``detections.json``
    for the whole run.

    The per-image JSON is written last, atomically, so its presence means the
    image is done: a re-run after a crash skips it.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _files(self, image: Path):
        return (self.folder / f'{image.stem}.jpg',
                self.folder / f'{image.stem}.json')

    def done(self, image: Path) -> bool:
        return all(p.exists() for p in self._files(image))

    def save(self, image: Path, image_id: int, data: bytes,
             dets: Detections, score_thr: float) -> None:
        annotated, sidecar = self._files(image)
        save_drawing(data, dets, annotated, score_thr)
        write_json(sidecar, coco_results(image.name, image_id,
                                         dets[dets.scores > score_thr]))

    def collect(self, images: Iterable[Path]) -> int:
        """Assemble ``detections.json`` from the images done so far."""
        rows, done = [], 0
        for image in images:
            sidecar = self._files(image)[1]
            if sidecar.exists():
                rows += json.loads(sidecar.read_text())
                done += 1
        write_json(self.folder / 'detections.json', rows)
        return done
