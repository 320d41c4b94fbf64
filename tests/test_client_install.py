"""``pip install ./client`` into a fresh venv, on the oldest and newest
Pythons it claims, then ``frcnn-detect`` against the served demo model."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

FORBIDDEN = {'torch', 'mmcv', 'mmdet', 'mmengine', 'mmdeploy', 'onnx',
             'onnxruntime', 'onnxruntime-gpu', 'opencv-python',
             'opencv-python-headless', 'openvino', 'nvidia-pytriton'}
PYENV = Path.home() / '.pyenv' / 'versions'


def interpreter(version: str):
    """This interpreter for 3.11; pyenv's for the others (None if absent)."""
    if version == f'{sys.version_info.major}.{sys.version_info.minor}':
        return sys.executable
    found = sorted(PYENV.glob(f'{version}.*/bin/python{version}'))
    return str(found[-1]) if found else shutil.which(f'python{version}')


@pytest.fixture(scope='module')
def demo_images(tmp_path_factory):
    from synthetic.generate import write_split
    folder = tmp_path_factory.mktemp('client_install')
    write_split(folder, 'val', 3, seed=1)
    return sorted((folder / 'val').glob('*.jpg'))


@pytest.fixture(scope='module')
def in_repo_detections(grpc_url, demo_images, tmp_path_factory, exported_demo):
    out = tmp_path_factory.mktemp('in_repo')
    done = subprocess.run(
        [sys.executable, '-m', 'client', '-u', grpc_url, '-m', 'demo',
         '--out', str(out), *map(str, demo_images)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((out / 'detections.json').read_text())


@pytest.mark.slow
@pytest.mark.parametrize('version', ['3.11', '3.9', '3.13'])
def test_the_client_installs_alone_and_detects_what_the_repo_client_does(
        version, grpc_url, demo_images, in_repo_detections, tmp_path):
    python = interpreter(version)
    if python is None:
        pytest.skip(f'no Python {version} on this machine (pyenv has '
                    f'{sorted(p.name for p in PYENV.glob("*"))})')
    venv = tmp_path / 'venv'
    subprocess.run([python, '-m', 'venv', str(venv)], check=True)
    pip = [str(venv / 'bin' / 'python'), '-m', 'pip',
           '--disable-pip-version-check']
    # this interpreter: the lock's versions; others: whatever pip resolves
    lock = (['-c', str(ROOT / 'requirements.txt')]
            if python == sys.executable else [])
    install = subprocess.run([*pip, 'install', '-q', *lock, str(ROOT / 'client')],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    listed = subprocess.run([*pip, 'list', '--format', 'json'],
                            capture_output=True, text=True, check=True)
    installed = {p['name'].lower() for p in json.loads(listed.stdout)}
    assert 'triton-frcnn-client' in installed and 'tritonclient' in installed
    assert not installed & FORBIDDEN, installed & FORBIDDEN

    out = tmp_path / 'out'
    done = subprocess.run(
        [str(venv / 'bin' / 'frcnn-detect'), '-u', grpc_url, '-m', 'demo',
         '--out', str(out), *map(str, demo_images)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(demo_images) + 1
    assert json.loads((out / 'detections.json').read_text()) == in_repo_detections
    assert len(in_repo_detections) > 0
