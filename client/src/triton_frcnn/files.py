"""Files on disk: which ones the tools treat as images, and writing one so
that a reader never sees half of it.

Ground floor, shared by the client and the export stage (which writes model
repositories with the same promise).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import (BinaryIO, Callable, Iterable, List, Optional, Sequence,
                    Union)

IMAGE_SUFFIXES = {'.jpg', '.jpeg', '.png', '.bmp', '.webp', '.gif', '.tif',
                  '.tiff'}


def image_files(paths: Iterable[Union[str, Path]]) -> List[Path]:
    """Files as given; folders expanded to the images directly inside them."""
    found: List[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            found.append(path)
    return found


def not_found(paths: Iterable[Optional[Union[str, Path]]]) -> Optional[str]:
    """What a command line says of the files and folders it was given that
    are not there (None if all are): one line, before any work."""
    missing = [str(path) for path in paths if path and not Path(path).exists()]
    return f'no such file or folder: {", ".join(missing)}' if missing else None


def given_images(paths: Sequence[Union[str, Path]]) -> List[Path]:
    """The images a command line names, in order; otherwise ValueError with
    the one line it says: the paths that are not there, or that none of them
    holds an image."""
    if problem := not_found(paths):
        raise ValueError(problem)
    found = image_files(paths)
    if not found:
        raise ValueError('no images in ' + ', '.join(map(str, paths)))
    return found


def write_atomic(path: Path, write: Union[bytes, str, Callable[[BinaryIO], None]]
                 ) -> None:
    """Write ``path`` through a temporary file beside it, renamed into place:
    it either keeps its old content or has all of the new. ``write``: the
    content, or a function that writes it into the open binary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not callable(write):
        data = write.encode() if isinstance(write, str) else write
        write = lambda f: f.write(data)  # noqa: E731
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
