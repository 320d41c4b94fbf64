"""NGC's Triton as the production engine: what the export writes is what
Triton 24.10 and its native backends read, the local server runs their
runtime versions, and one repository carries a CPU and a GPU placement
that tritonserver's --model-config-name selects."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export import parity
from export.triton_config import parse, to_text
from detection.preprocess import Preprocessing, sizes, two_buckets
from detection.runtime import for_version
from serve.server import TritonServer
from triton_frcnn.client import TritonDetector

from .conftest import GATED, ROOT, STAND_IN_ONLY, copy_models

# The parameters NGC 24.10's native backends read (r24.10 source:
# onnxruntime_backend src/onnxruntime.cc, openvino_backend src/openvino.cc)
NATIVE_PARAMETERS = {
    'onnxruntime': {'execution_mode', 'intra_op_thread_count',
                    'inter_op_thread_count', 'enable_mem_arena',
                    'enable_mem_pattern', 'memory.enable_memory_arena_shrinkage',
                    'cudnn_conv_algo_search', 'gpu_mem_limit',
                    'arena_extend_strategy', 'do_copy_in_default_stream'},
    'openvino': {'INFERENCE_NUM_THREADS', 'COMPILATION_NUM_THREADS',
                 'HINT_BF16', 'NUM_STREAMS', 'PERFORMANCE_HINT',
                 'CPU_EXTENSION_PATH', 'SKIP_OV_DYNAMIC_BATCHSIZE',
                 'ENABLE_BATCH_PADDING', 'RESHAPE_IO_LAYERS'},
    'python': {'threads', 'canvas'},  # read by the project's own model.py
}
FIDELITY = ROOT / 'docs' / 'native-backends.md'
RUNTIMES = dict(re.findall(r'^(\w+)==(\S+)$', (
    ROOT / 'serve' / 'backends' / 'ngc-runtimes.txt').read_text(), re.M))


def written_configs(repository: Path) -> dict:
    """Every config file the exports wrote: path -> its text."""
    return {p: p.read_text() for p in sorted(Path(repository).rglob('*.pbtxt'))}


@pytest.mark.slow
@pytest.mark.usefixtures(*GATED)
def test_every_config_the_export_writes_parses_as_tritons_model_config(stack):
    configs = written_configs(stack.server.repository)
    named = {p.parent.parent.name for p in configs if p.parent.name == 'configs'}
    # the formats ONNX Runtime's CUDA provider runs have a GPU placement;
    # int8 (QDQ on the CPU) and OpenVINO (CPU only in NGC) do not
    assert named == {'faster_rcnn_detector', 'faster_rcnn_preprocess',
                     'demo_detector', 'demo_preprocess', 'demo_fp16_detector',
                     'demo_fp16_preprocess', 'demo_canvas_detector',
                     'demo_canvas_preprocess'}
    for path, text in configs.items():
        config = text_format.Parse(text, mc.ModelConfig())  # strict: no unknown field
        assert config.name == path.parent.name or (
            path.parent.name == 'configs' and config.name == path.parent.parent.name)
        assert path.name in ('config.pbtxt', 'gpu.pbtxt')


def test_the_gpu_placement_is_what_the_issue_asks(stack):
    repo = Path(stack.server.repository)
    cpu = parse((repo / 'faster_rcnn_detector' / 'config.pbtxt').read_text())
    gpu = parse((repo / 'faster_rcnn_detector' / 'configs' / 'gpu.pbtxt')
                .read_text())
    group = gpu.instance_group[0]
    assert (group.kind, group.count, list(group.gpus)) == (
        mc.ModelInstanceGroup.KIND_GPU, 2, [])  # two on every GPU of the pod
    assert cpu.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    (cuda,) = gpu.optimization.execution_accelerators.gpu_execution_accelerator
    assert (cuda.name, dict(cuda.parameters)) == ('cuda', {'use_tf32': '0'})
    assert 'cudnn_conv_algo_search' not in gpu.parameters  # NGC's default
    assert not gpu.dynamic_batching.preferred_batch_size  # batches requests
    assert list(gpu.version_policy.specific.versions) == list(
        cpu.version_policy.specific.versions)
    pre = parse((repo / 'faster_rcnn_preprocess' / 'configs' / 'gpu.pbtxt')
                .read_text())
    assert pre.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    # exported with no annotated set: shape buckets cannot be judged, so
    # the GPU placement pads as mmdet does (exact), warmed up at every
    # batch size; buckets come only with a gate (test_canvas, the fp16 test)
    (version,) = cpu.version_policy.specific.versions
    meta = json.loads((repo / 'faster_rcnn_detector' / str(version)
                       / 'metadata.json').read_text())
    params = Preprocessing.from_dict(meta['preprocessing'])
    buckets = two_buckets(params)
    assert len(buckets) == 2 and not params.canvas
    assert 'canvas' not in pre.parameters
    assert 'canvas' not in parse((repo / 'faster_rcnn_preprocess' /
                                  'config.pbtxt').read_text()).parameters
    assert sorted((tuple(w.inputs['input'].dims)[1:], w.batch_size)
                  for w in gpu.model_warmup) == sorted(
        (params.largest, n) for n in range(1, 9))
    assert [tuple(w.inputs['input'].dims)[1:] for w in cpu.model_warmup] == [
        params.largest]
    assert meta['gpu_canvas'] == {
        'sizes': '', 'gate': f'{sizes(buckets)} not judged: no annotated set'}


@pytest.mark.slow
def test_default_gpu_buckets_that_fail_their_gate_fall_back_to_mmdets_padding(
        stack, exported_demo_fp16):
    """The demo's fp16 on its 320x320 bucket loses more AP on the gate's
    images than fp16 may: its GPU placement pads as mmdet does, and says
    why in its metadata."""
    repo = Path(stack.server.repository)
    meta = json.loads((exported_demo_fp16 / 'metadata.json').read_text())
    assert meta['gpu_canvas']['sizes'] == ''
    assert re.fullmatch(r'320x320 failed: accuracy gate failed: AP [\d.]+ fp32 '
                        r'-> [\d.]+ fp16 on GPU canvas 320x320 \(-[\d.]+ points, '
                        r'allowed -0\.3\), .* on 60 images', meta['gpu_canvas']['gate'])
    pre = parse((repo / 'demo_fp16_preprocess' / 'configs' / 'gpu.pbtxt').read_text())
    assert 'canvas' not in pre.parameters


def test_every_parameter_the_export_writes_is_one_ngc_reads(stack):
    """And the fidelity table in docs names it as read."""
    table = FIDELITY.read_text()
    for path, text in written_configs(stack.server.repository).items():
        config = parse(text)
        if config.platform:
            continue
        unread = set(config.parameters) - NATIVE_PARAMETERS[config.backend]
        assert not unread, f'{path}: {sorted(unread)} not read by NGC 24.10'
        for key in config.parameters:
            assert f'parameters {{ {key}' in table, f'{key} not in {FIDELITY.name}'


@pytest.mark.slow
@STAND_IN_ONLY
@pytest.mark.usefixtures('exported_openvino')
def test_the_local_backends_run_ngcs_runtime_versions(server):
    """The stand-in loaded ONNX Runtime and OpenVINO at NGC 24.10's versions
    (it logs what it imported), not the project's own."""
    log = server.log_file.read_text()
    for runtime, version in RUNTIMES.items():
        loaded = set(re.findall(rf'_detector: {runtime} (\S+) from', log))
        assert loaded and all(v.startswith(version) for v in loaded), (runtime, loaded)
    import onnxruntime
    assert onnxruntime.__version__ != RUNTIMES['onnxruntime']  # the project's own


@pytest.mark.slow
@pytest.mark.usefixtures('exported_openvino', 'exported_demo_int8',
                         'exported_demo_fp16')
@pytest.mark.parametrize('model', ['faster_rcnn', 'faster_rcnn_openvino', 'demo',
                                   'demo_int8', 'demo_fp16'])
@pytest.mark.native
def test_each_graph_detects_the_same_under_ngcs_runtimes(
        model, stack, unseen_images):
    """The served model (ONNX Runtime 1.19.2 / OpenVINO 2024.4) against the
    same graph in process on the project's runtimes."""
    repo = Path(stack.server.repository)
    version_dir = max((repo / f'{model}_detector').glob('[0-9]*'),
                      key=lambda p: int(p.name))
    local = for_version(version_dir)
    with stack.detector(model) as served:
        for path in unseen_images:
            want, got = local(path), served(path)
            match = parity.match(want, got, path.name)
            assert match.matched == match.reference == len(got), match


@pytest.mark.native
@pytest.mark.slow
def test_a_named_config_is_served_where_a_model_has_it(stack, tmp_path):
    """tritonserver's --model-config-name through the launcher: a named CPU
    variant of the detector (two instances) is what the server runs; the
    models without one keep config.pbtxt; the ensemble still answers."""
    repo = copy_models(Path(stack.server.repository), tmp_path / 'repo', 'demo')
    config = parse((repo / 'demo_detector' / 'config.pbtxt').read_text())
    config.instance_group[0].count = 2
    (repo / 'demo_detector' / 'configs' / 'two.pbtxt').write_text(to_text(config))
    server = TritonServer.on_free_ports(repo, workdir=tmp_path / 'triton',
                                        config_name='two')
    with server:
        url = f'127.0.0.1:{server.grpc_port}'
        client = grpcclient.InferenceServerClient(url)
        served = client.get_model_config('demo_detector', as_json=True)['config']
        assert served['instance_group'][0]['count'] == 2
        pre = client.get_model_config('demo_preprocess', as_json=True)['config']
        assert pre['instance_group'][0]['count'] == 1  # its config.pbtxt
        with TritonDetector(url, 'demo', wait=60) as det:
            assert len(det(ROOT / 'assets' / 'samples' / 'rocket.jpg').boxes) > 0


NO_GPU = pytest.mark.skipif(shutil.which('nvidia-smi') is not None,
                            reason='this host has a GPU driver')


@pytest.mark.parametrize('name, line', [
    ('nope', '--model-config-name nope: no model in {repo} has '
             'configs/nope.pbtxt'),
    pytest.param('gpu', 'no GPU on this host: --model-config-name gpu places '
                 'demo_detector on a GPU (serve without it for the CPU '
                 'placement)', marks=NO_GPU)])
@pytest.mark.native
def test_a_placement_that_cannot_be_served_is_one_line(name, line, stack,
                                                       tmp_path):
    """A name no model has, and the GPU placement on a host without a GPU:
    refused before the server starts."""
    repo = copy_models(Path(stack.server.repository), tmp_path / 'repo', 'demo')
    done = subprocess.run(
        [sys.executable, '-m', 'serve', '-r', str(repo),
         '--model-config-name', name, '--workdir', str(tmp_path / 'triton')],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        'serve: error: ' + line.format(repo=repo)]
    assert not (tmp_path / 'triton' / 'server.log').exists()  # never started
