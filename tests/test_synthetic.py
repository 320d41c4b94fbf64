"""python -m synthetic: the shapes dataset the demo detector is trained and
scored on, written once and then found up to date."""
from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def synthetic(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'synthetic', *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_the_splits_are_written_once_then_up_to_date(tmp_path):
    out = tmp_path / 'data'
    first = synthetic('-o', out, '--train', 3, '--val', 2)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f'{out / "train"}: 3 images (written)',
                                         f'{out / "val"}: 2 images (written)']
    val = json.loads((out / 'annotations' / 'val.json').read_text())
    assert [image['file_name'] for image in val['images']] == [
        'val_00000.jpg', 'val_00001.jpg']
    assert {a['image_id'] for a in val['annotations']} == {0, 1}
    assert len(list((out / 'train').glob('*.jpg'))) == 3
    again = synthetic('-o', out, '--train', 2, '--val', 2)
    assert again.stdout.splitlines() == [f'{out / "train"}: 2 images (up to date)',
                                         f'{out / "val"}: 2 images (up to date)']


def test_an_unwritable_folder_and_negative_counts_are_one_line_errors(tmp_path):
    blocked = tmp_path / 'a-file'
    blocked.write_text('not a folder')
    done = synthetic('-o', blocked / 'data', '--train', 0, '--val', 1)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f'synthetic: error: cannot write {blocked / "data"}: Not a directory')
    done = synthetic('-o', tmp_path / 'data', '--val', -1)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        'python -m synthetic: error: --train and --val must be 0 or more')
    assert not (tmp_path / 'data').exists()
