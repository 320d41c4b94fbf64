"""python -m bench: the same images through every path, in one run.

(a) mmdet's ``inference_detector`` in PyTorch (the seed tutorial's path);
(b) the exported model in process with ONNX Runtime, preprocessing included;
(c) Triton end to end through the client (gRPC, image bytes in, boxes out) at
each concurrency; (d) Triton's perf_analyzer on each detector model and on
instance/thread/batching-delay variants. The int8 (ONNX Runtime) and OpenVINO
exports run in process and served too, and in process also the preprocessing
alone and ONNX Runtime session-option variants. Each path is warmed up first. Also measured in the same run:
the machine's fp32 matmul and conv peak, and the model's FLOPs at the
benchmark size, so achieved GFLOP/s is reported as a fraction of the peak.
Writes a markdown table, a PNG plot and JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
from tqdm import tqdm

from detection import paths
from export.formats import FORMATS, Format
from ground import cli

from . import timing
from .timing import timed


def parse_args(argv=None):
    p = cli.parser('bench', __doc__)
    p.add_argument('-c', '--config', type=Path,
                   default=paths.R50_CONFIG)
    p.add_argument('-w', '--checkpoint', type=Path,
                   default=paths.RANDOM_R50_CHECKPOINT)
    p.add_argument('-m', '--name', default='bench')
    p.add_argument('-r', '--repository', type=Path,
                   help='the bench\'s own repository (default: '
                   '<out>/model_repository): its int8 model is not gated')
    timing.add_arguments(p, rounds=2, concurrency=[1, 2, 4, 8])
    p.add_argument('--other-concurrency', type=int, nargs='+', default=[1, 2],
                   help='Triton concurrency for the int8 and openvino models')
    p.add_argument('--perf-concurrency', type=int, nargs='+', default=[1, 2],
                   help='perf_analyzer concurrency levels on each detector')
    p.add_argument('--variant-concurrency', type=int, nargs='+', default=[2],
                   help='perf_analyzer concurrency for the instance, thread '
                   'and batching-delay variants of the fp32 detector')
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'bench')
    args = p.parse_args(argv)
    return timing.checked(p, args, *args.other_concurrency,
                          *args.perf_concurrency, *args.variant_concurrency)


BENCHED = {f.bench: f for f in FORMATS.values() if f.bench}  # by row format
BASELINE = 'fp32'  # what the other formats are compared with


def in_process_label(fmt: Format) -> str:
    """``onnxruntime``, ``onnxruntime int8``, ``openvino``."""
    return fmt.backend + ('' if fmt.precision == 'fp32' else f' {fmt.precision}')


def bench(args: argparse.Namespace) -> int:
    images = args.images
    payloads = [p.read_bytes() for p in images]
    requests, exports, model = export_all(args, images)
    params = preprocessing_of(exports[BASELINE])
    with tempfile.TemporaryDirectory(prefix='bench-') as tmp:
        work = Path(tmp)
        rows, load = in_process(model, exports, params, images, payloads,
                                args.rounds, work)
        served, perf_note = served_paths(requests, payloads, params, args,
                                         work)
    from .report import write
    write(summarise(args, images, model, params, payloads, {**rows, **served},
                    perf_note, load), args.out)
    print((args.out / 'bench.md').read_text())
    return 0


def export_all(args, images):
    """The three formats exported (or reused) into the bench's own
    repository, and the mmdet model for the PyTorch path.

    The int8 model's speed does not depend on its weights' values, but random
    weights cannot pass the mAP gate: it is exported ungated, into this
    scratch repository only (`make eval` judges int8 accuracy on the trained
    demo detector)."""
    from export import model as detector_model
    from export.pipeline import ensure
    from export.request import Accuracy, Export, Request
    repository = args.repository or args.out / 'model_repository'
    from export.random_checkpoint import ensure as ensure_checkpoint
    ensure_checkpoint(args.config, args.checkpoint)
    requests = {key: Request(
        Export(config=args.config, checkpoint=args.checkpoint, images=images,
               name=args.name, repository=repository, format=fmt.name),
        accuracy=Accuracy(calibration=images, accuracy_gate=False))
        for key, fmt in BENCHED.items()}
    exports = {key: ensure(request) for key, request in requests.items()}
    return requests, exports, detector_model.load(args.config,
                                                  args.checkpoint)[0]


def preprocessing_of(version_dir: Path):
    from detection.preprocess import Preprocessing
    meta = json.loads((version_dir / 'metadata.json').read_text())
    return Preprocessing.from_dict(meta['preprocessing'])


def in_process(model, exports, params, images, payloads, rounds: int,
               work: Path):
    """PyTorch, preprocessing alone, ONNX Runtime (and its session-option
    variants), int8 and OpenVINO, one image at a time; and session load
    times with and without the saved optimised model."""
    from detection.preprocess import decode, prepare
    from detection.runtime import OnnxDetector, for_version
    from export.parity import mmdet_detections

    from . import ort_options
    fp32 = exports[BASELINE] / 'model.onnx'
    variants = ort_options.variants(fp32, work)
    load = {'model.onnx, full optimisation': ort_options.load_seconds(
                fp32, ort_options.session_options()),
            'saved optimised model': ort_options.load_seconds(
                *variants['saved optimised model'])}
    by_payload = dict(zip(payloads, images))  # mmdet reads the file
    calls = {('pytorch', Row('pytorch')): lambda b: mmdet_detections(
                 model, by_payload[b]),
             ('preprocessing only', Row('preprocessing')):
                 lambda b: prepare(decode(b), params),
             (in_process_label(BENCHED[BASELINE]), Row('in process', BASELINE)):
                 OnnxDetector(fp32, params)}
    calls.update({(f'onnxruntime {name}', Row('in process', BASELINE, name)):
                  OnnxDetector(path, params, options=options)
                  for name, (path, options) in variants.items()})
    calls.update({(in_process_label(fmt), Row('in process', key)):
                  for_version(exports[key])
                  for key, fmt in BENCHED.items() if key != BASELINE})
    rows = {}
    with tqdm(total=len(payloads) * rounds * len(calls), unit='img',
              desc='in process', file=sys.stderr) as bar:
        for (label, key) in list(calls):
            rows[label] = key.tag(timed(calls.pop((label, key)), payloads,
                                        rounds, 1, bar))
    return rows, load


def served_paths(requests, payloads, params, args, work: Path):
    """Triton through the client at each concurrency, perf_analyzer on each
    detector, then the serving variants; rows and what perf_analyzer said."""
    from detection.preprocess import decode, prepare
    from tools.stack import served

    from . import perf_analyzer, serving_variants
    levels = [(BASELINE, c) for c in args.concurrency]
    levels += [(key, c) for key in BENCHED if key != BASELINE
               for c in args.other_concurrency]
    sample = prepare(decode(payloads[0]), params)  # perf_analyzer's input
    repository = requests[BASELINE].export.repository
    rows: Dict[str, Dict] = {}
    unstable: List[str] = []
    reason = perf_analyzer.unavailable()
    with served(repository) as stack, tqdm(
            total=len(payloads) * args.rounds * len(levels), unit='img',
            desc='triton', file=sys.stderr) as bar:
        for key, c in levels:
            label = '' if key == BASELINE else f' {key}'
            with stack.detector(requests[key].served_name) as det:
                rows[f'triton{label} c={c}'] = Row('triton', key, '', c).tag(
                    timed(det.infer_bytes, payloads, args.rounds, c, bar))
        try:
            for key, request in requests.items() if reason is None else ():
                label = '' if key == BASELINE else f' {key}'
                rows.update(perf_analyzer.run(
                    stack.grpc_url, request.detector_name, sample,
                    args.perf_concurrency, work, label))
                unstable += [f'{key} c={c}' for c in args.perf_concurrency
                             if f'perf_analyzer{label} c={c}' not in rows]
        except perf_analyzer.PerfAnalyzerError as exc:
            reason = str(exc)
    try:
        if reason is None:
            rows.update(serving_variants.measure(
                repository, requests[BASELINE].detector_name, sample,
                args.variant_concurrency, work))
    except perf_analyzer.PerfAnalyzerError as exc:
        reason = str(exc)
    return rows, reason or ('ran' + (
        f'; no stable measurement at {", ".join(unstable)}' if unstable else ''))


def summarise(args, images, model, params, payloads, rows: Dict[str, Dict],
              perf_note: str, load: Dict) -> Dict:
    """The report: every row, the FLOPs and the machine's peak, the ratios."""
    from detection.preprocess import decode, prepare

    from .floor import model_gflops, peak_gflops
    sizes = [prepare(decode(p), params).tensor.shape[1:] for p in payloads]
    gflops = float(np.mean([model_gflops(model, hw) for hw in sizes]))
    top = max((peak := peak_gflops()).values())
    achieved = {runtime: gflops * measured(rows, 'in process', key)[0][
        'throughput_ips'] for runtime, key in (('onnxruntime', BASELINE),
                                               ('openvino', 'openvino'))}
    return {
        'images': [p.name for p in images], 'rounds': args.rounds,
        'model': str(args.config.name), 'paths': rows,
        'perf_analyzer': perf_note, 'session_load_seconds': load,
        'model_gflop_per_image': round(gflops, 1),
        'machine_peak_gflops': peak,
        **{f'{path}_achieved_gflops': round(value, 1)
           for path, value in achieved.items()},
        **{f'{path}_fraction_of_peak': round(value / top, 3)
           for path, value in achieved.items()},
        'ratios': ratios(rows),
    }


@dataclass(frozen=True)
class Row:
    """What a row measured, written into it: the ratios find rows by these
    fields, so a row's label (the report's display name) is free to change."""
    path: str                # pytorch, preprocessing, in process, triton
    format: str = ''         # fp32, int8, openvino
    variant: str = ''        # an ONNX Runtime session-option variant
    concurrency: int = 0     # requests in flight (served paths)

    def tag(self, row: Dict) -> Dict:
        return {**row, **asdict(self)}


def measured(rows: Dict[str, Dict], path: str, fmt: str = '',
             concurrency: int = 0) -> List[Dict]:
    """The rows of ``path`` and ``fmt`` (no session-option variant), at
    ``concurrency`` if one is named."""
    found = [r for r in rows.values()
             if (r.get('path'), r.get('format'), r.get('variant')) == (path, fmt, '')
             and concurrency in (0, r.get('concurrency'))]
    if not found:
        raise KeyError(f'no row measured {path} {fmt} c={concurrency}')
    return found


def ratios(rows: Dict[str, Dict]) -> Dict[str, float]:
    """The comparisons the performance notes quote, from one run's rows."""
    def ips(path: str, fmt: str = '') -> float:
        (row,) = measured(rows, path, fmt)
        return row['throughput_ips']

    def best(fmt: str) -> float:
        return max(r['throughput_ips'] for r in measured(rows, 'triton', fmt))

    def p50(path: str, fmt: str = '', concurrency: int = 0) -> float:
        (row,) = measured(rows, path, fmt, concurrency)
        return row['p50_ms']

    pytorch, fp32 = ips('pytorch'), ips('in process', 'fp32')
    pairs = {
        'triton_c1_latency_vs_onnxruntime': (p50('triton', 'fp32', 1),
                                             p50('in process', 'fp32')),
        'triton_best_throughput_vs_pytorch': (best('fp32'), pytorch),
        'onnxruntime_throughput_vs_pytorch': (fp32, pytorch),
        'int8_throughput_vs_fp32': (ips('in process', 'int8'), fp32),
        'triton_int8_best_throughput_vs_pytorch': (best('int8'), pytorch),
        'openvino_throughput_vs_onnxruntime': (ips('in process', 'openvino'), fp32),
        'triton_openvino_best_throughput_vs_pytorch': (best('openvino'), pytorch),
        'preprocessing_share_of_onnxruntime': (p50('preprocessing'),
                                               p50('in process', 'fp32')),
    }
    return {name: round(a / b, 3) for name, (a, b) in pairs.items()}


main = cli.entry('bench', parse_args, bench)


if __name__ == '__main__':
    sys.exit(main())
