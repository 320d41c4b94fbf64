"""The native tier's own checks: that the server of this run is NVIDIA's
native backends from TRITON_BACKEND_DIR, at NGC 24.10's runtime versions.
The rest of the tier (``-m native``) is the suite's serving tests, which
run on whichever engine the session's servers have."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import ENGINE, NATIVE_ONLY, ROOT

pytestmark = [pytest.mark.native, NATIVE_ONLY]
RUNTIMES = dict(re.findall(r'^(\w+)==(\S+)$', (
    ROOT / 'serve' / 'backends' / 'ngc-runtimes.txt').read_text(), re.M))


def test_the_server_runs_the_native_backends_it_was_given(server):
    """Triton initialised the native onnxruntime backend from the given
    directory (its own log lines), not the stand-in's model.py, and the
    directory's runtimes are NGC 24.10's versions."""
    log = server.log_file.read_text()
    assert log.splitlines()[0] == ENGINE.line()
    assert 'TRITONBACKEND_Initialize: onnxruntime' in log
    served = Path(server.workdir) / 'backends' / 'onnxruntime'
    assert (served / 'libtriton_onnxruntime.so').is_file()
    assert not (served / 'model.py').exists()
    versions = ENGINE.describe()['backends']
    assert versions['onnxruntime'] == RUNTIMES['onnxruntime'], versions
    if 'openvino' in versions:
        assert versions['openvino'].startswith(RUNTIMES['openvino']), versions


def test_the_openvino_backend_has_the_images_cpu_defaults():
    """The openvino backend folder holds the server image's plugins.xml (fp32
    on every CPU), as deploy/Dockerfile puts it there."""
    folder = ENGINE.backends().get('openvino')
    if folder is None:
        pytest.skip(f'no openvino backend in {ENGINE.directory}')
    plugins = (folder / 'plugins.xml').read_text()
    assert plugins == (ROOT / 'deploy' / 'openvino-plugins.xml').read_text()
