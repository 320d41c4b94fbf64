"""GPU serving: what the export generates for a GPU and what the backend and
launcher make of it, checked here on a CPU; the served GPU path itself runs
only where CUDA does (skipped elsewhere, with the reason)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from export.capacity import Capacity
from export.device import Device, visible_gpus
from export.formats import FORMATS
from export.triton_config import detector, parse, to_text
from serve.server import TritonServer
from tritonclient.grpc import model_config_pb2 as mc

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG, ROOT, photo_like
from .test_repository import INPUTS, OUTPUTS

RUNTIME_BACKEND = ROOT / 'serve' / 'backends' / 'runtime.py'


def no_cuda() -> str:
    """Why the GPU path cannot run here, or ''."""
    return Device('cuda').unavailable() or ''


def test_devices_parse_as_mmdeploy_spells_them():
    assert Device.parse('cpu') == Device()
    assert Device.parse('cuda') == Device('cuda', 0)
    assert Device.parse('CUDA:1') == Device('cuda', 1)
    assert str(Device.parse('cuda:1')) == 'cuda:1'
    for bad in ('gpu', 'cuda:x', 'cpu:0', ''):
        with pytest.raises(ValueError, match='expected cpu, cuda or cuda:N'):
            Device.parse(bad)


def test_a_gpu_detector_config_runs_on_its_gpu_exactly_and_batches():
    device = Device('cuda', 1)
    config = parse(to_text(detector(
        'det', FORMATS['onnxruntime'], INPUTS, OUTPUTS, (800, 1344),
        Capacity(16, gpu=True), device=device, max_queue_delay_us=2000)))
    group = config.instance_group[0]
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU
    assert list(group.gpus) == [1]
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params['cudnn_conv_algo_search'] == '2'  # DEFAULT: no re-search
    assert params['use_tf32'] == '0'                # exact fp32
    assert not config.dynamic_batching.preferred_batch_size
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    cpu = parse(to_text(detector('det', FORMATS['onnxruntime'], INPUTS,
                                 OUTPUTS, (800, 1344), Capacity(2))))
    assert cpu.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert 'use_tf32' not in cpu.parameters and not cpu.instance_group[0].gpus
    assert Device('cuda').providers()[0] == ('CUDAExecutionProvider', {
        'device_id': 0, 'cudnn_conv_algo_search': 'DEFAULT', 'use_tf32': 0})


@pytest.mark.skipif(not no_cuda(), reason='this host has CUDA')
def test_device_cuda_without_cuda_is_one_line_and_writes_nothing(tmp_path):
    repo = tmp_path / 'repo'
    done = subprocess.run(
        [sys.executable, '-m', 'export', '-c', str(DEMO_CONFIG), '-w',
         str(DEMO_CHECKPOINT), '-m', 'demo', '-r', str(repo), '--device',
         'cuda'], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('export: error: --device cuda:0'), lines
    assert not repo.exists()
    typo = subprocess.run([sys.executable, '-m', 'export', '--device', 'gpu'],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert typo.returncode == 2 and "expected cpu, cuda or cuda:N" in typo.stderr


def runtime_backend():
    """serve/backends/runtime.py as a module; Triton's own utilities, which
    exist only inside a Triton Python stub, stand in as an empty module."""
    sys.modules.setdefault('triton_python_backend_utils',
                           types.ModuleType('triton_python_backend_utils'))
    spec = importlib.util.spec_from_file_location('runtime_backend',
                                                  RUNTIME_BACKEND)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_backend_puts_a_gpu_instance_on_its_gpu_with_the_configs_settings():
    backend = runtime_backend()
    available = ['CUDAExecutionProvider', 'CPUExecutionProvider']
    assert backend.providers('CPU', 0, {}, available) == ['CPUExecutionProvider']
    assert backend.providers('GPU', '1', Device('cuda', 1).parameters(),
                             available) == [
        ('CUDAExecutionProvider', {'device_id': 1, 'use_tf32': 0,
                                   'cudnn_conv_algo_search': 'DEFAULT'}),
        'CPUExecutionProvider']
    with pytest.raises(RuntimeError, match='install onnxruntime-gpu'):
        backend.providers('GPU', 0, {}, ['CPUExecutionProvider'])


@pytest.mark.skipif(visible_gpus() > 0, reason='this host has a GPU')
def test_a_gpu_model_on_a_host_without_one_is_left_out_and_the_rest_served(
        exported, tmp_path):
    request, _ = exported
    repo = tmp_path / 'repo'
    shutil.copytree(request.repository, repo, copy_function=os.link)
    config = repo / 'demo_detector' / 'config.pbtxt'
    text = config.read_text()
    config.unlink()  # a hard link: the session's repository keeps its own
    config.write_text(text.replace('kind: KIND_CPU', 'kind: KIND_GPU'))
    server = TritonServer.on_free_ports(repo, workdir=tmp_path / 'triton')
    try:
        server.start()
        assert server.report[0] == (
            'no GPU on this host: not loading demo_detector (for a GPU) nor '
            'demo (runs them); serving the CPU models')
        from triton_frcnn.client import TritonDetector
        with TritonDetector(f'127.0.0.1:{server.grpc_port}') as det:
            assert len(det(photo_like(320, 256, 3))) > 0
            assert not det.client.is_model_ready('demo')
    finally:
        server.stop()


@pytest.mark.skipif(bool(no_cuda()), reason=no_cuda() or 'CUDA is here')
def test_served_on_the_gpu_equals_the_cpu_path(stack, tmp_path):
    """On a CUDA host: the demo detector exported for cuda:0, served, gives
    the CPU server's detections (fp32, TF32 off)."""
    from export.pipeline import Request, run
    from tools.stack import served
    images = sorted((ROOT / 'assets' / 'samples').glob('*.jpg'))[:2]
    request = Request(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT,
                      images=images, name='demo', device='cuda',
                      repository=tmp_path / 'repo')
    run(request)
    probe = photo_like(320, 256, 7)
    with stack.detector('demo') as cpu:
        want = cpu(probe)
    with served(tmp_path / 'repo', workdir=tmp_path / 'triton') as gpu_stack, \
            gpu_stack.detector('demo') as gpu:
        got = gpu(probe)
    assert len(got) == len(want) > 0
    np.testing.assert_allclose(got.boxes, want.boxes, atol=0.5)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-3)
