"""The benchmark harness at a tiny size: it runs and its report adds up.
Speed itself is measured by `make bench`, never asserted here."""
from __future__ import annotations

import importlib
import json

import pytest

from bench.floor import model_gflops, peak_gflops
from bench.report import markdown, write


def test_flop_count_of_the_r50_fpn(mmdet_model):
    """1000 proposals through the RoI head's FC layers, plus backbone, neck
    and RPN, which cost ~403 GFLOP at 800x1344 and scale with the area."""
    roi_head = 2 * 1000 * (256 * 7 * 7 * 1024 + 1024 * 1024
                           + 1024 * 81 + 1024 * 4 * 80) / 1e9
    dense = 403 * (256 * 416) / (800 * 1344)
    gflop = model_gflops(mmdet_model, (256, 416))
    assert abs(gflop - (roi_head + dense)) < 0.1 * (roi_head + dense), gflop


def test_peak_measurement_is_positive():
    peak = peak_gflops(seconds=0.2)
    assert peak['matmul'] > 1 and peak['conv3x3'] > 1


def test_report_files(tmp_path):
    row = {'p50_ms': 10.0, 'p95_ms': 12.0, 'throughput_ips': 50.0, 'requests': 4}
    report = {'images': ['a.jpg'], 'rounds': 1, 'model': 'm',
              'paths': {'pytorch': {**row, 'throughput_ips': 10.0},
                        'onnxruntime': row, 'triton c=1': row},
              'model_gflop_per_image': 100.0,
              'machine_peak_gflops': {'matmul': 200.0, 'conv3x3': 400.0},
              'onnxruntime_achieved_gflops': 300.0,
              'onnxruntime_fraction_of_peak': 0.75,
              'openvino_achieved_gflops': 340.0,
              'openvino_fraction_of_peak': 0.85,
              'perf_analyzer': 'ran',
              'session_load_seconds': {'model.onnx': 2.0, 'saved': 1.0},
              'ratios': {'triton_c1_latency_vs_onnxruntime': 1.0,
                         'triton_best_throughput_vs_pytorch': 5.0,
                         'onnxruntime_throughput_vs_pytorch': 5.0,
                         'int8_throughput_vs_fp32': 2.5,
                         'triton_int8_best_throughput_vs_pytorch': 12.0,
                         'openvino_throughput_vs_onnxruntime': 1.1,
                         'triton_openvino_best_throughput_vs_pytorch': 5.5,
                         'preprocessing_share_of_onnxruntime': 0.04}}
    write(report, tmp_path)
    written = json.loads((tmp_path / 'bench.json').read_text())
    assert list(written)[0] == 'provenance' and written['provenance']['machine']['cpus'] >= 1
    assert {k: v for k, v in written.items() if k != 'provenance'} == report
    text = (tmp_path / 'bench.md').read_text()
    assert '| triton c=1 | 10.0 | 12.0 | 50.0 |' in text
    assert '**75%** of the measured peak; OpenVINO 340.0 GFLOP/s = **85%**' in text
    assert 'in process): **1.1x**; best Triton OpenVINO throughput / PyTorch: **5.5x**' in text
    assert 'int8 / fp32 throughput, in process: **2.5x**' in text
    assert '(p50): 4.0%' in text
    assert 'session load seconds: model.onnx 2.0, saved 1.0' in text
    assert (tmp_path / 'bench.png').read_bytes()[:4] == b'\x89PNG'
    assert markdown(report) == text


GPU_ARGS = ['-r', 'x', '--fp16', 'x', '--ann', 'x', '--gate-images', 'x']


def test_the_ratios_find_rows_by_what_they_measured_not_by_label():
    """Labels are display names: renamed, the ratios stay; a row missing is
    named, not guessed."""
    from bench.__main__ import Row, ratios

    def row(ips: float, key: Row) -> dict:
        return key.tag({'p50_ms': 1000 / ips, 'p95_ms': 0, 'throughput_ips': ips})
    rows = {'a': row(0.25, Row('pytorch')), 'b': row(100.0, Row('preprocessing')),
            'c': row(0.5, Row('in process', 'fp32')),
            'd': row(0.4, Row('in process', 'fp32', 'threads=1')),
            'e': row(1.0, Row('in process', 'int8')),
            'f': row(0.55, Row('in process', 'openvino')),
            'g': row(0.45, Row('triton', 'fp32', '', 1)),
            'h': row(0.48, Row('triton', 'fp32', '', 2)),
            'i': row(1.2, Row('triton', 'int8', '', 1)),
            'j': row(0.52, Row('triton', 'openvino', '', 1))}
    assert ratios(rows) == {
        'triton_c1_latency_vs_onnxruntime': round((1000 / 0.45) / 2000, 3),
        'triton_best_throughput_vs_pytorch': round(0.48 / 0.25, 3),
        'onnxruntime_throughput_vs_pytorch': 2.0,
        'int8_throughput_vs_fp32': 2.0,
        'triton_int8_best_throughput_vs_pytorch': 4.8,
        'openvino_throughput_vs_onnxruntime': 1.1,
        'triton_openvino_best_throughput_vs_pytorch': 2.08,
        'preprocessing_share_of_onnxruntime': 0.005}
    del rows['i']
    with pytest.raises(KeyError, match='no row measured triton int8 c=0'):
        ratios(rows)


@pytest.mark.parametrize('module, args, line', [
    ('bench', ['--images', '/nonexistent'],
     'no such file or folder: /nonexistent'),
    ('bench', ['--images', 'configs'], 'no images in configs'),
    ('bench', ['--rounds', '0'],
     '--rounds and the concurrency levels must be 1 or more'),
    ('bench.gpu', [*GPU_ARGS, '--batch', '4', '0'],
     '--batch, --concurrency, --rounds and --gate-limit must be 1 or more'),
    ('bench.gpu', [*GPU_ARGS, '--seconds', '0'],
     '--seconds must be more than 0 and --warmup 0 or more'),
    ('bench.sweep', ['--concurrency', '0'],
     '--concurrency, --rounds and --cpus must be 1 or more'),
    ('bench.direct', ['--burst', '0'], '--sides and --burst must be 1 or more'),
    ('bench.engines', ['--rounds', '0'],
     '--rounds and the concurrency levels must be 1 or more'),
    ('bench.scaling', ['--warmup', '-1'],
     '--seconds must be more than 0 and --warmup 0 or more'),
    ('tools.demo', ['-c', 'configs', '-w', '/nonexistent.pth', '--images', '.'],
     'no such file or folder: /nonexistent.pth'),
    ('tools.demo', ['-c', 'configs', '-w', 'configs', '--images', 'configs'],
     'no images in configs'),
    ('tools.demo', ['-c', 'configs', '-w', 'configs', '--limit', '-1'],
     '--limit must be 0 or more'),
    ('tools.cluster', ['--tls-key', __file__],
     'TLS needs --tls-certificate and --tls-key'),
    ('tools.cluster', ['--tls-certificate', '/nonexistent.pem', '--tls-key', __file__],
     'no such file or folder: /nonexistent.pem'),
])
def test_the_tools_refuse_arguments_they_cannot_run_before_any_work(
        module, args, line, capsys):
    package = importlib.import_module(module)
    main = getattr(package, 'main', None) or importlib.import_module(
        module + '.__main__').main
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f'python -m {module}: error: {line}')


def test_the_engines_comparison_needs_native_backends_and_says_so(
        tmp_path, monkeypatch, capsys):
    from bench import engines
    monkeypatch.delenv('TRITON_BACKEND_DIR', raising=False)
    assert engines.main(['--out', str(tmp_path / 'engines.json')]) == 1
    assert capsys.readouterr().err.splitlines() == [
        'bench.engines: error: no native backends given: TRITON_BACKEND_DIR='
        'DIR (make bench BACKEND_DIR=DIR) names the engine to compare']
    assert not (tmp_path / 'engines.json').exists()
