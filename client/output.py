"""Result files, written so that a reader never sees half of one."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, List

from detection.postprocess import Detections


def write_atomic(path: Path, write: Callable) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    data = json.dumps(list(rows), indent=1).encode()
    write_atomic(path, lambda f: f.write(data))


class ResultFolder:
    """``--out``: ``<stem>.jpg`` and ``<stem>.json`` per image, and
    ``detections.json`` for the whole run.

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
             dets: Detections, detector, score_thr: float) -> None:
        annotated, sidecar = self._files(image)
        detector.show_result(data, dets, annotated, score_thr)
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
