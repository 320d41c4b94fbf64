"""GPU serving: what the export generates for a GPU and what the backend and
launcher make of it, checked here on a CPU; the served GPU path itself runs
only where CUDA does (skipped elsewhere, with the reason)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from export.capacity import Capacity
from export.device import Device, visible_gpus
from export.formats import FORMATS
from export.triton_config import detector, parse, to_text
from serve.server import TritonServer
from google.protobuf.json_format import MessageToDict
from tritonclient.grpc import model_config_pb2 as mc

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG, ROOT, copy_models, photo_like
from .test_repository import INPUTS, OUTPUTS

RUNTIME_BACKEND = ROOT / 'serve' / 'backends' / 'runtime.py'


def no_cuda() -> str:
    """Why the GPU path cannot run here, or ''."""
    return Device('cuda').unavailable() or ''


def cuda_options(config: mc.ModelConfig) -> dict:
    """What NGC's onnxruntime backend passes to the CUDA provider: the
    ``cuda`` gpu_execution_accelerator's parameters."""
    (cuda,) = [a for a in config.optimization.execution_accelerators
               .gpu_execution_accelerator if a.name == 'cuda']
    return dict(cuda.parameters)


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
        'det', FORMATS['onnxruntime'], INPUTS, OUTPUTS, [(800, 1344)],
        Capacity(16, gpu=True), device=device, max_queue_delay_us=2000)))
    group = config.instance_group[0]
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU
    assert list(group.gpus) == [1]
    params = {k: v.string_value for k, v in config.parameters.items()}
    # cuDNN's search stays the native backend's default (no measurement
    # backs another yet); the warm-up runs it at load
    assert 'cudnn_conv_algo_search' not in params
    assert cuda_options(config) == {'use_tf32': '0'}  # exact fp32
    assert not config.dynamic_batching.preferred_batch_size
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    cpu = parse(to_text(detector('det', FORMATS['onnxruntime'], INPUTS,
                                 OUTPUTS, [(800, 1344)], Capacity(2))))
    assert cpu.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert not cpu.HasField('optimization') and not cpu.instance_group[0].gpus
    assert 'cudnn_conv_algo_search' not in cpu.parameters
    assert Device('cuda').providers()[0] == ('CUDAExecutionProvider', {
        'device_id': 0, 'use_tf32': '0'})


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
    """As NGC's native backend builds the CUDA provider's options: the
    accelerator's parameters, then the four deprecated top-level keys over
    them whenever the model has any parameter (server issue #8808)."""
    backend = runtime_backend()
    available = ['CUDAExecutionProvider', 'CPUExecutionProvider']
    assert backend.providers('CPU', available, {}) == ['CPUExecutionProvider']
    config = detector('det', FORMATS['onnxruntime'], INPUTS, OUTPUTS,
                      [(800, 1344)], Capacity(16, gpu=True), Device('cuda', 1))
    as_triton_gives_it = MessageToDict(config, preserving_proto_field_name=True)
    params = {k: v['string_value']
              for k, v in as_triton_gives_it['parameters'].items()}
    options = backend.cuda_options(as_triton_gives_it, params, 1)
    assert options == {'device_id': '1', 'use_tf32': '0',
                       'cudnn_conv_algo_search': 'EXHAUSTIVE',
                       'gpu_mem_limit': str(2**64 - 1),
                       'arena_extend_strategy': 'kNextPowerOfTwo',
                       'do_copy_in_default_stream': '1'}
    assert backend.providers('GPU', available, options) == [
        ('CUDAExecutionProvider', options), 'CPUExecutionProvider']
    # an accelerator's search setting loses to the top-level default...
    accelerator = {'optimization': {'execution_accelerators': {
        'gpu_execution_accelerator': [{'name': 'cuda', 'parameters': {
            'cudnn_conv_algo_search': 'HEURISTIC'}}]}}}
    assert backend.cuda_options(accelerator, {'intra_op_thread_count': '2'},
                                0)['cudnn_conv_algo_search'] == 'EXHAUSTIVE'
    # ...and stands only in a model with no parameters at all
    assert backend.cuda_options(accelerator, {}, 0)[
        'cudnn_conv_algo_search'] == 'HEURISTIC'
    with pytest.raises(RuntimeError, match='install onnxruntime-gpu'):
        backend.providers('GPU', ['CPUExecutionProvider'], options)


def test_the_openvino_backend_passes_on_only_what_ngcs_does():
    backend = runtime_backend()
    assert backend.openvino_properties({
        'INFERENCE_NUM_THREADS': '2', 'PERFORMANCE_HINT': 'LATENCY',
        'INFERENCE_PRECISION_HINT': 'f32', 'threads': '1'}) == {
        'INFERENCE_NUM_THREADS': '2', 'PERFORMANCE_HINT': 'LATENCY'}
    assert backend.openvino_properties({'HINT_BF16': 'YES'}) == {
        'INFERENCE_PRECISION_HINT': 'bf16'}


@pytest.mark.slow
@pytest.mark.skipif(visible_gpus() > 0, reason='this host has a GPU')
def test_a_gpu_model_on_a_host_without_one_is_left_out_and_the_rest_served(
        exported, exported_demo, tmp_path):
    request, _ = exported
    repo = copy_models(request.export.repository, tmp_path / 'repo',
                       'faster_rcnn', 'demo')
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
    from export.pipeline import run
    from export.request import Export, Placement, Request
    from tools.stack import served
    images = sorted((ROOT / 'assets' / 'samples').glob('*.jpg'))[:2]
    request = Request(
        Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT, images=images,
               name='demo', repository=tmp_path / 'repo'),
        placement=Placement(device='cuda'))
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


def test_a_detector_exported_here_is_placed_on_a_gpu_hosts_card(
        exported, exported_demo, tmp_path):
    """What ``python -m bench.gpu`` serves on a GPU host that has no mmdet:
    the repository exported here, its detector moved onto the card, warmed
    up at every batch size, and as a variant on shape buckets."""
    from bench.gpu.placement import place_repository
    from export.capacity import available_cpus
    request, _ = exported
    placed = tmp_path / 'placed'
    version = place_repository(request.export.repository, placed, 'demo',
                               Device('cuda', 1), tf32=False)
    assert sorted(p.name for p in placed.iterdir()) == [
        'demo', 'demo_detector', 'demo_postprocess', 'demo_preprocess']
    config = parse((placed / 'demo_detector' / 'config.pbtxt').read_text())
    group = config.instance_group[0]
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU and list(group.gpus) == [1]
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert 'cudnn_conv_algo_search' not in params
    assert cuda_options(config) == {'use_tf32': '0'}
    assert params['intra_op_thread_count'] == str(available_cpus())
    assert not config.dynamic_batching.preferred_batch_size  # batches there
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [(w.batch_size, list(w.inputs['input'].dims))
            for w in config.model_warmup] == [(n, [3, 320, 320]) for n in range(1, 9)]
    pre = parse((placed / 'demo_preprocess' / 'config.pbtxt').read_text())
    assert pre.instance_group[0].count == max(1, available_cpus() // 2)
    assert 'canvas' not in pre.parameters
    source = request.export.repository / 'demo_detector'
    assert parse((source / 'config.pbtxt').read_text()).instance_group[0] \
        .kind == mc.ModelInstanceGroup.KIND_CPU
    assert (version / 'model.onnx').samefile(source / version.name / 'model.onnx')
    place_repository(request.export.repository, placed, 'demo', Device('cuda', 1),
                     tf32=True, canvas=((320, 352), (352, 320)))
    config = parse((placed / 'demo_detector' / 'config.pbtxt').read_text())
    assert cuda_options(config) == {'use_tf32': '1'}
    assert sorted({tuple(w.inputs['input'].dims) for w in config.model_warmup}) \
        == [(3, 320, 352), (3, 352, 320)] and len(config.model_warmup) == 16
    pre = parse((placed / 'demo_preprocess' / 'config.pbtxt').read_text())
    assert pre.parameters['canvas'].string_value == '320x352,352x320'


@pytest.fixture(scope='session')
def demo_fp16_graph(exported, exported_demo, tmp_path_factory):
    """The folder ``bench.gpu --fp16`` reads: demo.onnx, the demo's graph
    through the fp16 deploy config's conversion (as ``bench.gpu.pack``
    makes it)."""
    from bench.gpu.pack import halve
    request, _ = exported
    folder = tmp_path_factory.mktemp('fp16')
    halve(request.export.repository, folder, ['demo'])
    return folder


@pytest.mark.slow
def test_the_gpu_sitting_runs_on_a_cpu_and_its_report_adds_up(
        exported, exported_demo, demo_fp16_graph, val_split, unseen_images,
        tmp_path):
    """``python -m bench.gpu --device cpu``: every path ran on the same
    images; fp32 (and TF32, fp32 on a CPU) served exactly; each variant was
    served as placed; the gates and the ratios are the rows'."""
    from bench.gpu import sitting as gpu
    request, _ = exported
    out = tmp_path / 'gpu'
    eager = not gpu.eager_unavailable()
    assert gpu.main([
        '-r', str(request.export.repository), '-m', 'demo', '--gate-model', 'demo',
        '--fp16', str(demo_fp16_graph), '--ann', str(val_split.ann_file),
        '--gate-images', str(val_split.image_dir), '--gate-limit', '12',
        '--device', 'cpu', '--images', *map(str, unseen_images[:2]),
        '--batch', '1', '2', '--rounds', '1', '--concurrency', '1', '2',
        '--seconds', '1', '--warmup', '0', '--out', str(out)]
        + ([] if eager else ['--no-eager'])) == 0
    report = json.loads((out / 'performance-gpu.json').read_text())
    names = sorted(p.name for p in unseen_images[:2])
    assert report['card'] is report['driver'] is None
    assert report['provenance']['machine']['cpus'] >= 1
    assert report['onnxruntime']['providers'][-1] == 'CPUExecutionProvider'
    assert list(report['paths']) == ['onnxruntime fp32'] + [
        'pytorch eager fp32', 'pytorch eager tf32'] * eager
    for rows in report['paths'].values():
        assert sorted(rows) == ['1', '2']
        assert all(abs(r['ms_per_image'] * r['images_per_s'] - 1000) < 10
                   for r in rows.values())
    served = report['served']
    assert list(served) == list(gpu.VARIANTS)
    for variant, row in served.items():
        assert sorted(row['parity']) == names
        assert [lv['concurrency'] for lv in row['levels']] == [1, 2]
        assert all(lv['errors'] == 0 and lv['requests'] > 0 for lv in row['levels'])
        best = max(row['levels'], key=lambda lv: lv['throughput'])
        assert (row['best_throughput'], row['best_concurrency']) == (
            best['throughput'], best['concurrency'])
        spent = {n: m['queue_ms'] + m['compute_ms'] for n, m in best['models'].items()}
        assert row['prepost_share_at_best'] == round(
            (spent[f'demo_{variant}_preprocess'] + spent[f'demo_{variant}_postprocess'])
            / sum(spent.values()), 4)
    for variant in ('fp32', 'tf32'):
        assert all(r['fraction'] == 1.0 for r in served[variant]['parity'].values())
    assert max(r['max_box_diff'] for r in served['fp16']['parity'].values()) > 0
    placed = out / 'repository'  # one server served every variant
    assert sorted(p.name for p in placed.iterdir()) == sorted(
        f'demo_{v}{part}' for v in gpu.VARIANTS
        for part in ('', '_preprocess', '_detector', '_postprocess'))
    assert (placed / 'demo_fp16_detector' / '1' / 'model.onnx').read_bytes() \
        == (demo_fp16_graph / 'demo.onnx').read_bytes()
    assert parse((placed / 'demo_buckets_preprocess' / 'config.pbtxt')
                 .read_text()).parameters['canvas'].string_value == '320x320'
    ensemble = parse((placed / 'demo_tf32' / 'config.pbtxt').read_text())
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [
        'demo_tf32_preprocess', 'demo_tf32_detector', 'demo_tf32_postprocess']
    gates = report['gates']
    assert gates['model'] == 'demo' and gates['images'] == 12
    rows = gates['rows']
    assert list(rows) == ['fp32', 'tf32', 'fp16', 'buckets'] and rows['fp32']['ap'] > 5
    assert rows['tf32']['ap'] == rows['fp32']['ap']  # TF32 exists only on a GPU
    for variant in ('tf32', 'fp16', 'buckets'):
        row = rows[variant]
        assert row['drop'] == round(rows['fp32']['ap'] - row['ap'], 2)
        assert row['passed'] == (row['drop'] <= gpu.MAX_DROP[variant])
    ratios = report['ratios']
    worst = min(r['fraction'] for r in served['fp32']['parity'].values())
    assert ratios['fp32_worst_tight_fraction'] == worst
    assert ratios['targets_met']['exact'] is True
    assert ratios['targets_met']['prepost'] == (
        served['fp32']['prepost_share_at_best'] <= 0.2)
    text = (out / 'performance-gpu.md').read_text()
    if eager:
        fastest = max(report['paths']['pytorch eager fp32'].values(),
                      key=lambda r: r['images_per_s'])['images_per_s']
        assert ratios['fp32_served_vs_eager'] == round(
            served['fp32']['best_throughput'] / fastest, 3)
        assert f'| {ratios["fp32_served_vs_eager"]}x |' in text
    else:
        assert ratios['fp32_served_vs_eager'] is None
        assert ratios['targets_met']['speed'] is None
        assert text.count('| no eager run |') == 4
    assert f'fp32 AP {rows["fp32"]["ap"]}; tf32 AP' in text
    cpu_nodes = report['placement']['providers']['CPUExecutionProvider']['nodes']
    assert f'Node placement of the fp32 graph: CPUExecutionProvider {cpu_nodes} nodes.' in text
    (meta,) = (placed / 'demo_fp32_detector').glob('*/metadata.json')
    assert report['export_parity_vs_mmdet'] == json.loads(meta.read_text())['parity']


def eager_missing() -> str:
    from bench.gpu.sitting import eager_unavailable
    return eager_unavailable()


@pytest.mark.skipif(bool(eager_missing()), reason=eager_missing())
def test_the_eager_baseline_does_the_whole_job():
    """torchvision's R50-FPN as the bench runs it: decoded from the bytes,
    a hundred detections an image, boxes back on the host."""
    from bench.gpu.sitting import eager_model
    from detection.preprocess import Preprocessing
    call = eager_model(Preprocessing(scale=(320, 320)), Device(), tf32=False)
    payload = cv2.imencode('.jpg', photo_like(300, 200, 5))[1].tobytes()
    out = call([payload, payload])
    assert len(out) == 2 and out[0]['boxes'].shape == (100, 4)
    assert out[0]['boxes'].device.type == 'cpu'
    assert float(out[0]['boxes'][:, 2].max()) <= 300.0
    np.testing.assert_allclose(out[0]['boxes'], out[1]['boxes'], atol=1e-3)


@pytest.mark.skipif(not no_cuda(), reason='this host has CUDA')
def test_the_gpu_bench_refuses_what_it_cannot_run_in_one_line(tmp_path, capsys):
    from bench.gpu import sitting as gpu
    given = ['--fp16', str(tmp_path), '--ann', str(tmp_path),
             '--gate-images', str(tmp_path), '--out', str(tmp_path / 'o')]
    assert gpu.main(['-r', str(tmp_path), *given]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('bench.gpu: error: --device cuda:0')
    assert gpu.main(['-r', str(tmp_path), '-m', 'x', '--device', 'cpu',
                     *given]) == 1
    assert capsys.readouterr().err == (
        f"bench.gpu: error: {tmp_path} holds no exported 'x' (x_preprocess, "
        'x_detector, x_postprocess, x missing; python -m export -r REPO -m '
        'NAME writes them)\n')
    assert not (tmp_path / 'o').exists()


def test_the_gpu_sitting_refuses_a_pack_without_fp16_graphs(
        exported, exported_demo, tmp_path, capsys):
    from bench.gpu import sitting as gpu
    request, _ = exported
    assert gpu.main(['-r', str(request.export.repository), '-m', 'demo',
                     '--gate-model', 'demo', '--device', 'cpu', '--no-eager',
                     '--fp16', str(tmp_path), '--ann', str(tmp_path),
                     '--gate-images', str(tmp_path),
                     '--out', str(tmp_path / 'o')]) == 1
    assert capsys.readouterr().err == (
        f'bench.gpu: error: no fp16 graph {tmp_path}/demo.onnx\n')
    assert not (tmp_path / 'o').exists()


@pytest.mark.skipif(not eager_missing(), reason='torchvision loads here')
def test_without_torchvision_the_gpu_bench_says_how_to_run(
        exported, exported_demo, demo_fp16_graph, tmp_path, capsys):
    from bench.gpu import sitting as gpu
    request, _ = exported
    assert gpu.main(['-r', str(request.export.repository), '-m', 'demo',
                     '--gate-model', 'demo', '--device', 'cpu',
                     '--fp16', str(demo_fp16_graph), '--ann', str(tmp_path),
                     '--gate-images', str(tmp_path),
                     '--out', str(tmp_path / 'o')]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith('bench.gpu: error: PyTorch eager needs a working '
                           'torchvision (') and line.endswith(
        '); --no-eager leaves it out')
    assert not (tmp_path / 'o').exists()


def test_the_node_placement_is_read_from_onnxruntimes_own_log(detector_dir):
    """On this CPU every node is the CPU provider's, as ONNX Runtime counts
    them after its optimisations (fewer than the graph file holds); a
    GPU's log (its lines as ONNX Runtime writes them) splits them."""
    import onnx
    from bench.gpu.ort_placement import parse, placement
    nodes = len(onnx.load(str(detector_dir / 'model.onnx'),
                          load_external_data=False).graph.node)
    placed = placement(detector_dir / 'model.onnx', Device())
    (cpu,) = placed['providers'].items()
    assert cpu[0] == 'CPUExecutionProvider' and 0 < cpu[1]['nodes'] < nodes
    assert placed['memcpy'] == {}
    prefix = '2026-12-01 [V:onnxruntime:, session_state.cc:1598 VerifyEachNodeIsAssignedToAnEp] '
    log = '\n'.join([
        prefix + 'Node placements',
        prefix + ' Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 900',
        prefix + '  Conv (/backbone/conv1/Conv)',
        prefix + ' Node(s) placed on [CPUExecutionProvider]. Number of nodes: 3',
        prefix + '  Shape (/rpn/Shape)', prefix + '  Shape (/rpn/Shape_1)',
        prefix + '  Range (/rpn/Range)',
        '2026-12-01 [W:onnxruntime:, transformer_memcpy.cc:74 ApplyImpl] 3 Memcpy '
        'nodes are added to the graph main_graph for CUDAExecutionProvider.'])
    assert parse(log) == {
        'providers': {'CUDAExecutionProvider': {'nodes': 900, 'ops': {'Conv': 1}},
                      'CPUExecutionProvider': {'nodes': 3, 'ops': {'Shape': 2, 'Range': 1}}},
        'memcpy': {'main_graph': 3}}


def test_the_sitting_tar_is_cut_into_parts_that_the_script_joins(tmp_path):
    """make gpu-pack --part-mb: one part a folder, SHA256SUMS in the last;
    scripts/gpu-sitting.sh's join (cat of the parts, then sha256sum -c)
    gives the tar back byte for byte."""
    import hashlib
    import os
    from bench.gpu.pack import cut
    tar = tmp_path / 'sitting.tar'
    tar.write_bytes(os.urandom(5 * 2**20 + 123))
    assert cut(tar, 2, tmp_path / 'parts') == 3
    folders = sorted((tmp_path / 'parts').iterdir())
    assert [f.name for f in folders] == ['01', '02', '03']
    carry = tmp_path / 'carry'
    carry.mkdir()
    for part in sorted((tmp_path / 'parts').rglob('*')):
        if part.is_file():
            (carry / part.name).write_bytes(part.read_bytes())
    (line,) = (carry / 'SHA256SUMS').read_text().splitlines()
    assert line == f'{hashlib.sha256(tar.read_bytes()).hexdigest()}  sitting.tar'
    script = (ROOT / 'scripts' / 'gpu-sitting.sh').read_text().splitlines()
    start = next(i for i, l in enumerate(script) if l.startswith('for f in'))
    end = next(i for i, l in enumerate(script) if l.startswith('sha256sum'))
    join = subprocess.run(['bash', '-c', '\n'.join(script[start:end + 1])],
                          cwd=carry, capture_output=True, text=True)
    assert join.returncode == 0, join.stderr
    assert (carry / 'sitting.tar').read_bytes() == tar.read_bytes()
