"""bench.md, bench.json and bench.png from one run's report."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ground.results import write_report


def paths_table(paths: Dict[str, Dict]) -> List[str]:
    """Each timed path's latency and throughput, a markdown table's lines
    (bench.md's, and engines.md's)."""
    return ['| path | p50 ms | p95 ms | images/s |', '| --- | --- | --- | --- |',
            *(f'| {name} | {row["p50_ms"]} | {row["p95_ms"]} | '
              f'{row["throughput_ips"]} |' for name, row in paths.items())]


def markdown(report: dict) -> str:
    lines = paths_table(report['paths'])
    r = report['ratios']
    peak = report['machine_peak_gflops']
    lines += [
        '',
        f'- Triton c=1 p50 latency / in-process ONNX Runtime p50: '
        f'**{r["triton_c1_latency_vs_onnxruntime"]}x** (serving overhead)',
        f'- best Triton throughput / PyTorch: '
        f'**{r["triton_best_throughput_vs_pytorch"]}x**',
        f'- ONNX Runtime throughput / PyTorch: '
        f'{r["onnxruntime_throughput_vs_pytorch"]}x',
        f'- int8 / fp32 throughput, in process: '
        f'**{r["int8_throughput_vs_fp32"]}x**',
        f'- best Triton int8 throughput / PyTorch: '
        f'**{r["triton_int8_best_throughput_vs_pytorch"]}x**',
        f'- OpenVINO / ONNX Runtime throughput (fp32, in process): '
        f'**{r["openvino_throughput_vs_onnxruntime"]}x**; best Triton '
        f'OpenVINO throughput / PyTorch: '
        f'**{r["triton_openvino_best_throughput_vs_pytorch"]}x**',
        f'- preprocessing alone / the in-process ONNX Runtime path (p50): '
        f'{r["preprocessing_share_of_onnxruntime"]:.1%}',
        '- session load seconds: ' + ', '.join(
            f'{name} {seconds}'
            for name, seconds in report['session_load_seconds'].items()),
        f'- perf_analyzer: {report["perf_analyzer"]}',
        f'- model: {report["model_gflop_per_image"]} GFLOP per image; machine '
        f'peak (fp32): matmul {peak["matmul"]} GFLOP/s, 3x3 conv '
        f'{peak["conv3x3"]} GFLOP/s',
        f'- ONNX Runtime achieves {report["onnxruntime_achieved_gflops"]} '
        f'GFLOP/s = **{report["onnxruntime_fraction_of_peak"]:.0%}** of the '
        f'measured peak; OpenVINO {report["openvino_achieved_gflops"]} GFLOP/s '
        f'= **{report["openvino_fraction_of_peak"]:.0%}**',
    ]
    return '\n'.join(lines) + '\n'


def write(report: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    report = write_report(out / 'bench.json', report, markdown)
    names = list(report['paths'])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.barh(names, [report['paths'][n]['throughput_ips'] for n in names])
    left.set_xlabel('images / s (higher is better)')
    right.barh(names, [report['paths'][n]['p50_ms'] for n in names],
               label='p50')
    right.barh(names, [report['paths'][n]['p95_ms'] - report['paths'][n]['p50_ms']
                       for n in names],
               left=[report['paths'][n]['p50_ms'] for n in names], alpha=0.5,
               label='p95')
    right.set_xlabel('latency ms (lower is better)')
    right.legend()
    fig.suptitle(f'{report["model"]}: {len(report["images"])} images x '
                 f'{report["rounds"]} rounds')
    fig.tight_layout()
    fig.savefig(out / 'bench.png', dpi=100)
    plt.close(fig)
