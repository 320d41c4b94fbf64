"""Writing into a Triton model repository without ever leaving half a model.

Everything for a version is written into a hidden staging folder beside it and
renamed into place in one step; Triton ignores folders whose name is not a
number, so a crash mid-write leaves nothing it would load.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Mapping, Optional

from triton_frcnn.files import write_atomic

from . import triton_config
from .errors import ExportError

NAMED_CONFIGS = 'configs'  # <model>/configs/<name>.pbtxt: --model-config-name
# the named placements the export writes (and removes where a format has
# none); others in configs/ are the user's own
EXPORT_PLACEMENTS = ('gpu',)


def stale_placements(model: str, placements) -> list:
    """The export's placements of ``model`` that a publish without them
    must remove, as repository-relative paths: left in place, one would
    stay pinned to a version the new config no longer lists."""
    return [f'{model}/{NAMED_CONFIGS}/{name}.pbtxt'
            for name in EXPORT_PLACEMENTS if name not in placements]


def composing(name: str) -> List[str]:
    """The models the ensemble ``name`` runs, in order: its preprocess,
    detector and postprocess."""
    return [f'{name}_preprocess', f'{name}_detector', f'{name}_postprocess']


def versions(model_dir: Path) -> list:
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.is_dir() and p.name.isdigit())


def next_version(model_dir: Path) -> int:
    found = versions(model_dir)
    return found[-1] + 1 if found else 1


def writable_model_dir(repository: Path, name: str) -> Path:
    """Create ``repository/name`` or fail with one line saying why."""
    model_dir = Path(repository) / name
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=model_dir, prefix='.probe-')
        probe.close()
    except OSError as exc:
        raise ExportError(f'model repository {repository} is not writable: '
                          f'{exc.strerror or exc}') from None
    return model_dir


def publish_version(model_dir: Path, version: Optional[int],
                    fill: Callable[[Path], None]) -> Path:
    """Let ``fill`` write a version's files into a staging folder, then move
    it to ``model_dir/<version>`` (the next free one by default). An explicit
    version that exists is replaced."""
    version = version or next_version(model_dir)
    target = model_dir / str(version)
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=f'.{version}.'))
    try:
        fill(staging)
        os.chmod(staging, 0o755)
        if target.exists():
            retired = Path(tempfile.mkdtemp(dir=model_dir, prefix='.old.'))
            os.replace(target, retired / 'v')
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def write_configs(model_dir: Path, config, placements: Mapping[str, object],
                  version: Optional[int]) -> None:
    """``config.pbtxt`` and the named placements beside it
    (``configs/<name>.pbtxt``, which tritonserver's ``--model-config-name``
    selects), each pinned to ``version`` (None: an ensemble's one); the
    named ones first, so a model whose default config is there is whole;
    then the export's placements this publish has not (a format without a
    GPU placement after one with it) removed."""
    named = {model_dir / NAMED_CONFIGS / f'{name}.pbtxt': placed
             for name, placed in placements.items()}
    for path, placed in [*named.items(), (model_dir / 'config.pbtxt', config)]:
        if version is not None:
            triton_config.serve_only(placed, version)
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, triton_config.to_text(placed))
    for stale in stale_placements(model_dir.name, placements):
        (model_dir.parent / stale).unlink(missing_ok=True)
