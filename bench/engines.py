"""python -m bench.engines: the engines side by side in one run, on the
R50-FPN fp32 export and the same photos: mmdet's PyTorch, the graph in
process on the project's ONNX Runtime and on NGC's (1.19.2, in a child
process: one process holds one ONNX Runtime), and served through the
ensemble by the stand-in and by the native backends of TRITON_BACKEND_DIR
(``make bench BACKEND_DIR=DIR`` runs it) at each concurrency, the native
one also with one intra-op thread (its threads spin, the stand-in's do not:
the thread rule of export/capacity.py, checked again).

Writes engines.json and engines.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

from tqdm import tqdm

from detection import paths
from ground import cli
from ground.cli import Failure
from ground.engine import Engine
from ground.results import title, write_report

from . import r50, timing
from .report import paths_table
from .timing import timed

NGC_ONNXRUNTIME = Path(sys.prefix) / 'ngc-runtimes'  # scripts/setup.sh


def parse_args(argv=None):
    p = cli.parser('bench.engines', __doc__)
    r50.add_arguments(p)
    timing.add_arguments(p, rounds=2, concurrency=[1, 2, 4])
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'engines.json')
    return timing.checked(p, p.parse_args(argv))


def compare(args) -> int:
    native = Engine.from_environment()
    if native.name != 'native':
        raise Failure('no native backends given: TRITON_BACKEND_DIR=DIR (make '
                      'bench BACKEND_DIR=DIR) names the engine to compare')
    from export import model as detector_model
    request, version = r50.exported(args, args.images)
    payloads = [p.read_bytes() for p in args.images]
    rows = in_process(detector_model.load(args.config, args.checkpoint)[0],
                      version, payloads, args)
    for label, engine, threads in (('stand-in', Engine(), 0),
                                   ('native', native, 0),
                                   ('native, 1 intra-op thread', native, 1)):
        rows.update(served(request, engine, threads, payloads, args, label))
    report = {'images': [p.name for p in args.images], 'rounds': args.rounds,
              'model': args.config.name, 'engines': {
                  'stand-in': Engine().describe(), 'native': native.describe()},
              'paths': rows, 'ratios': ratios(rows, args.concurrency)}
    print(render(write_report(args.out, report, render)), end='')
    return 0


def in_process(model, version: Path, payloads: List[bytes],
               args) -> Dict[str, Dict]:
    """PyTorch and the project's ONNX Runtime here, NGC's in a child."""
    from detection.runtime import for_version
    from export.parity import mmdet_detections
    by_payload = dict(zip(payloads, args.images))
    calls = {'pytorch': lambda b: mmdet_detections(model, by_payload[b]),
             'onnxruntime (project)': for_version(version)}
    rows = {}
    with tqdm(total=len(payloads) * args.rounds * len(calls), unit='img',
              desc='in process', file=sys.stderr) as bar:
        for label, call in calls.items():
            rows[label] = timed(call, payloads, args.rounds, 1, bar)
    import onnxruntime
    rows['onnxruntime (project)']['version'] = onnxruntime.__version__
    ngc = ngc_onnxruntime(version, args)
    rows['onnxruntime (NGC)'] = ngc['defaults']
    rows['onnxruntime (NGC), as served'] = ngc['as served']
    return rows


def ngc_onnxruntime(version: Path, args) -> Dict:
    """The same timing in a child process that imports NGC's ONNX Runtime
    first (``python -m bench.engines --child``)."""
    if not NGC_ONNXRUNTIME.is_dir():
        raise Failure(f'{NGC_ONNXRUNTIME} is missing (make setup installs '
                      "NGC's runtimes there)")
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(NGC_ONNXRUNTIME), str(paths.ROOT)])}
    done = subprocess.run(
        [sys.executable, '-m', 'bench.engines_child', str(version),
         str(args.rounds), *map(str, args.images)],
        capture_output=True, text=True, cwd=paths.ROOT, env=env)
    if done.returncode != 0:
        raise Failure('ONNX Runtime 1.19.2 in process failed: '
                      + (done.stderr.strip().splitlines() or ['?'])[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def served(request, engine: Engine, threads: int, payloads, args,
           label: str) -> Dict[str, Dict]:
    """The ensemble through the client at each concurrency, on a server
    of ``engine``; ``threads``: the detector's intra-op threads (0: as
    exported)."""
    from tools.stack import served as serving

    from .serving_variants import configured
    config = request.export.repository / request.detector_name / 'config.pbtxt'
    rows = {}
    with configured(config, **({'threads': threads} if threads else {})), \
            serving(request.export.repository, engine=engine) as stack, \
            stack.detector(request.served_name) as det, tqdm(
                total=len(payloads) * args.rounds * len(args.concurrency),
                unit='img', desc=label, file=sys.stderr) as bar:
        for c in args.concurrency:
            rows[f'triton {label} c={c}'] = {
                **timed(det.infer_bytes, payloads, args.rounds, c, bar),
                'engine': label, 'concurrency': c}
    return rows


def ratios(rows: Dict[str, Dict], levels) -> Dict[str, float]:
    def p50(name):
        return rows[name]['p50_ms']

    def ips(name):
        return rows[name]['throughput_ips']

    best = {engine: max(ips(f'triton {engine} c={c}') for c in levels)
            for engine in ('stand-in', 'native', 'native, 1 intra-op thread')}
    pairs = {
        'native_c1_p50_vs_ngc_onnxruntime_in_process_as_served':
            (p50('triton native c=1'), p50('onnxruntime (NGC), as served')),
        'stand_in_c1_p50_vs_ngc_onnxruntime_in_process_as_served':
            (p50('triton stand-in c=1'), p50('onnxruntime (NGC), as served')),
        'native_c1_p50_vs_ngc_onnxruntime_in_process_defaults':
            (p50('triton native c=1'), p50('onnxruntime (NGC)')),
        'ngc_onnxruntime_as_served_vs_defaults_in_process':
            (p50('onnxruntime (NGC), as served'), p50('onnxruntime (NGC)')),
        'native_c1_p50_vs_stand_in': (p50('triton native c=1'),
                                      p50('triton stand-in c=1')),
        'native_best_throughput_vs_stand_in': (best['native'],
                                               best['stand-in']),
        'native_1_thread_best_throughput_vs_native': (
            best['native, 1 intra-op thread'], best['native']),
        'native_best_throughput_vs_pytorch': (best['native'],
                                              ips('pytorch')),
        'ngc_onnxruntime_vs_project_onnxruntime_in_process': (
            ips('onnxruntime (NGC)'), ips('onnxruntime (project)')),
    }
    return {name: round(a / b, 3) for name, (a, b) in pairs.items()}


def render(report: Dict) -> str:
    lines = [title(report, 'Engines side by side', report['model']), '',
             *paths_table(report['paths'])]
    lines += ['', '| ratio | value |', '| --- | --- |']
    lines += [f'| {name} | {value}x |' for name, value in report['ratios'].items()]
    native = report['engines']['native']
    lines += ['', f"Native backends: {native['directory']} ("
              + ', '.join(f'{k} {v}' for k, v in native['backends'].items())
              + '); stand-in: ' + report['engines']['stand-in']['backends']]
    return '\n'.join(lines) + '\n'


main = cli.entry('bench.engines', parse_args, compare)


if __name__ == '__main__':
    sys.exit(main())
