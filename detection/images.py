"""Which files the command-line tools treat as images."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List

IMAGE_SUFFIXES = {'.jpg', '.jpeg', '.png', '.bmp', '.webp', '.gif', '.tif',
                  '.tiff'}


def image_files(paths: Iterable[Path]) -> List[Path]:
    """Files as given; folders expanded to the images directly inside them."""
    found: List[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            found.append(path)
    return found
