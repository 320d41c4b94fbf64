"""Checkpoints: download with hash check, and loading without code execution."""
from __future__ import annotations

import os
import pickle
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from ground.files import sha256

from .errors import ExportError


@dataclass(frozen=True)
class Release:
    url: str
    sha256_prefix: str  # OpenMMLab names files after their hash's first 8 hex

    @property
    def filename(self) -> str:
        return self.url.rsplit('/', 1)[-1]


SEED = Release(
    url='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
    'faster_rcnn_r50_fpn_1x_coco/'
    'faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth',
    sha256_prefix='047c8118')


def download(release: Release, directory: Path, timeout: float = 30) -> Path:
    """Fetch a release into ``directory`` unless a verified copy is there."""
    target = directory / release.filename
    if target.exists() and sha256(target).startswith(release.sha256_prefix):
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=directory, suffix='.part')
    try:
        with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(
                release.url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 20), b''):
                out.write(block)
        digest = sha256(Path(partial))
        if not digest.startswith(release.sha256_prefix):
            raise ExportError(
                f'downloaded {release.filename} has sha256 {digest[:8]}..., '
                f'expected {release.sha256_prefix}...')
        os.replace(partial, target)
        return target
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, 'reason', exc)
        raise ExportError(f'cannot download {release.url}: {reason} '
                          '(no network? copy the file into '
                          f'{directory}/ by hand)') from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


# What mmengine's Runner saves beside the weights (message_hub's
# HistoryBuffers of numpy arrays, the optimizer's and schedulers' state): the
# safe loader reads each of these globals as an inert object, never calling
# the real one, since only the weights and their metadata are used
TRAINING_STATE = frozenset({
    'mmengine.logging.history_buffer.HistoryBuffer',
    'numpy.core.multiarray._reconstruct', 'numpy._core.multiarray._reconstruct',
    'numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar',
    'numpy.ndarray', 'numpy.dtype', 'builtins.getattr'})
WEIGHTS = ('state_dict', 'meta')  # what the export reads of a checkpoint


class Inert:
    """What a training-state global becomes when read: nothing runs."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def load(path: Path) -> dict:
    """Read a checkpoint with ``weights_only=True``: tensors and plain data
    only, so a malicious file cannot run code on load. A training
    checkpoint of mmengine's Runner is read the same way, its training
    state's own types as inert objects (TRAINING_STATE)."""
    if not path.is_file():
        raise ExportError(f'checkpoint not found: {path} (`make checkpoint` '
                          'downloads the COCO weights)')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        checkpoint = training_checkpoint(path, exc)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise ExportError(
            f'checkpoint {path} is corrupt or not a PyTorch file ({first})'
        ) from None
    if not isinstance(checkpoint, dict):
        raise ExportError(f'checkpoint {path} holds a {type(checkpoint).__name__},'
                          ' not a state dict')
    return checkpoint


def training_checkpoint(path: Path, refused: pickle.UnpicklingError) -> dict:
    """A checkpoint the plain safe loader refused: read again if what it
    refused is training state only, with the weights all tensors; refused
    in one line naming the global otherwise."""
    try:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(
            str(path)))
    except Exception:  # not a torch.save file at all
        unsafe = set()
    if not unsafe or not unsafe <= TRAINING_STATE:
        lines = [line.strip() for line in str(refused).splitlines()
                 if line.strip()]
        reason = next((line for line in lines if 'Unsupported global' in line),
                      lines[0] if lines else 'unpickling error')
        raise ExportError(
            f'checkpoint {path} is refused by the safe loader, which loads '
            f'tensors, plain data and mmengine\'s training state only '
            f'({reason.split(". Please")[0]})') from None
    with torch.serialization.safe_globals([(Inert, name) for name in unsafe]):
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    weights = checkpoint.get('state_dict', {}) if isinstance(checkpoint, dict) else {}
    if not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ExportError(f'checkpoint {path} has no state_dict of tensors '
                          '(not a model\'s weights)')
    return {key: checkpoint[key] for key in WEIGHTS if key in checkpoint}


def save(path: Path, state_dict: dict, classes, **meta) -> Path:
    """Write weights in mmdet 3.x's layout (what ``load`` and
    ``class_names`` read back), with free-form provenance in ``meta``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': state_dict,
                'meta': {'dataset_meta': {'classes': list(classes)}, **meta}},
               path)
    return path


def class_names(checkpoint: dict) -> tuple | None:
    """Class names as mmdet 3.x (``dataset_meta``) or 2.x (``CLASSES``)
    stored them."""
    meta = checkpoint.get('meta') or {}
    names = (meta.get('dataset_meta') or {}).get('classes') or meta.get('CLASSES')
    return tuple(names) if names else None


def main(argv=None) -> int:
    """``make checkpoint``: fetch the seed model's COCO weights."""
    import argparse

    from ground.cli import run
    p = argparse.ArgumentParser(prog='python -m export.checkpoint',
                                description=main.__doc__)
    p.add_argument('-o', '--out', type=Path, default=Path('checkpoints'))
    args = p.parse_args(argv)

    def work() -> int:
        print(download(SEED, args.out))
        return 0
    return run('checkpoint', work)


if __name__ == '__main__':
    raise SystemExit(main())
