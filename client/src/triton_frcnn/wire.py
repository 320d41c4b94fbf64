"""The wire contract between the served detector and its clients.

One place says what crosses the wire: the ensemble's input (encoded image
bytes) and outputs (boxes in original-image pixels, scores, class ids, class
names, the count of real rows), and how one image's rows become a
``Detections``. The export writes the ensemble's config from these tensors,
the server's postprocessing packs its results with ``pack`` and the client
reads them with ``unpack``, so the three cannot drift apart.

Pure NumPy: the client distribution carries it, and the server's Python
models find it copied beside them in the model repository.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str          # Triton's wire datatype: BYTES, FP32, INT64, INT32
    dims: Tuple[int, ...]  # without the batch axis; -1 where it varies


IMAGE = Tensor('IMAGE', 'BYTES', (1,))  # one encoded JPEG/PNG/BMP/WebP
BOXES = Tensor('BOXES', 'FP32', (-1, 4))  # x1, y1, x2, y2, original pixels
SCORES = Tensor('SCORES', 'FP32', (-1,))  # best first
CLASSES = Tensor('CLASSES', 'INT64', (-1,))  # -1 in padding rows
CLASS_NAMES = Tensor('CLASS_NAMES', 'BYTES', (-1,))  # UTF-8, the class field
NUM_DETECTIONS = Tensor('NUM_DETECTIONS', 'INT32', (1,))  # real rows
OUTPUTS = (BOXES, SCORES, CLASSES, CLASS_NAMES, NUM_DETECTIONS)


@dataclass
class Detections:
    boxes: np.ndarray   # float32 [K, 4] x1, y1, x2, y2 in original pixels
    scores: np.ndarray  # float32 [K], best first
    labels: np.ndarray  # int64 [K]
    names: Optional[np.ndarray] = None  # str [K], where the server sent them

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index) -> 'Detections':
        """Select detections by slice or boolean mask."""
        return Detections(self.boxes[index], self.scores[index],
                          self.labels[index],
                          None if self.names is None else self.names[index])

    def top(self, k: int) -> 'Detections':
        return self[:k]


def pack(found: Sequence[Detections], classes: Sequence[bytes]
         ) -> Dict[str, np.ndarray]:
    """A batch of images' detections as the ensemble's outputs: each image's
    rows padded to the longest, ``NUM_DETECTIONS`` saying how many are real.
    ``classes``: the UTF-8 class names, indexed by label."""
    width = max((len(f) for f in found), default=0)
    boxes = np.zeros((len(found), width, 4), np.float32)
    scores = np.zeros((len(found), width), np.float32)
    labels = np.full((len(found), width), -1, np.int64)
    names = np.full((len(found), width), b'', dtype=object)
    table = np.asarray(list(classes), dtype=object)
    for i, f in enumerate(found):
        n = len(f)
        boxes[i, :n], scores[i, :n], labels[i, :n] = f.boxes, f.scores, f.labels
        names[i, :n] = table[f.labels]
    count = np.asarray([[len(f)] for f in found], np.int32)
    return {BOXES.name: boxes, SCORES.name: scores, CLASSES.name: labels,
            CLASS_NAMES.name: names, NUM_DETECTIONS.name: count}


def unpack(outputs: Dict[str, np.ndarray], index: Optional[int] = 0
           ) -> Detections:
    """One image's ``Detections`` from the outputs of a request: ``index``
    into the batch axis, or None when the model has none."""
    def rows(tensor: Tensor) -> np.ndarray:
        value = outputs[tensor.name]
        return value if index is None else value[index]
    n = int(rows(NUM_DETECTIONS).reshape(-1)[0])
    names = [x.decode() if isinstance(x, bytes) else str(x)
             for x in rows(CLASS_NAMES)[:n]]
    return Detections(boxes=rows(BOXES)[:n].astype(np.float32),
                      scores=rows(SCORES)[:n].astype(np.float32),
                      labels=rows(CLASSES)[:n].astype(np.int64),
                      names=np.array(names, dtype=object))
