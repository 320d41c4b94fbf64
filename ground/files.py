"""What a file holds, by digest: a checkpoint's identity in the metadata,
whether two graphs are the same model whatever folder they sit in, and
which code made an export."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(roots: Iterable[Path], patterns=('*.py', '*.txt')) -> str:
    """One digest of the files matching ``patterns`` under ``roots``, by
    relative path and content: it changes when any of them does."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for pattern in patterns
                           for p in Path(root).rglob(pattern)
                           if '__pycache__' not in p.parts):
            digest.update(str(path.relative_to(Path(root).parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
