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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
from tqdm import tqdm
from triton_frcnn.files import given_images

from detection import paths


def latency_stats(latencies: Sequence[float], wall: float, count: int) -> Dict:
    ms = np.asarray(latencies) * 1000
    return {'p50_ms': round(float(np.percentile(ms, 50)), 1),
            'p95_ms': round(float(np.percentile(ms, 95)), 1),
            'throughput_ips': round(count / wall, 3), 'requests': count}


def timed(call: Callable[[bytes], object], payloads: List[bytes], rounds: int,
          concurrency: int, bar) -> Dict:
    """Warm up on every image, then ``rounds`` passes with ``concurrency``
    calls in flight."""
    for payload in payloads:
        call(payload)
    jobs = payloads * rounds

    def one(payload):
        start = time.perf_counter()
        call(payload)
        bar.update()
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, jobs))
    return latency_stats(latencies, time.perf_counter() - start, len(jobs))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='python -m bench', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('-c', '--config', type=Path,
                   default=paths.R50_CONFIG)
    p.add_argument('-w', '--checkpoint', type=Path,
                   default=paths.RANDOM_R50_CHECKPOINT)
    p.add_argument('--images', type=Path, nargs='+',
                   default=[paths.SAMPLES])
    p.add_argument('-m', '--name', default='bench')
    p.add_argument('-r', '--repository', type=Path,
                   help='the bench\'s own repository (default: '
                   '<out>/model_repository): its int8 model is not gated')
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--concurrency', type=int, nargs='+', default=[1, 2, 4, 8])
    p.add_argument('--other-concurrency', type=int, nargs='+', default=[1, 2],
                   help='Triton concurrency for the int8 and openvino models')
    p.add_argument('--perf-concurrency', type=int, nargs='+', default=[1, 2],
                   help='perf_analyzer concurrency levels on each detector')
    p.add_argument('--variant-concurrency', type=int, nargs='+', default=[2],
                   help='perf_analyzer concurrency for the instance, thread '
                   'and batching-delay variants of the fp32 detector')
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'bench')
    args = p.parse_args(argv)
    try:  # the checkpoint is made if missing
        args.images = given_images(args.images)
    except ValueError as exc:
        p.error(str(exc))
    if min(args.rounds, *args.concurrency, *args.other_concurrency,
           *args.perf_concurrency, *args.variant_concurrency) < 1:
        p.error('--rounds and the concurrency levels must be 1 or more')
    return args


FORMATS = (('fp32', 'onnxruntime'), ('int8', 'onnxruntime-int8'),
           ('openvino', 'openvino'))


def main(argv=None) -> int:
    args = parse_args(argv)
    from export.__main__ import setup_logging
    from export.errors import ExportError
    from serve.server import ServerError, interrupt_on_sigterm

    setup_logging(verbose=False)
    interrupt_on_sigterm()
    images = args.images
    payloads = [p.read_bytes() for p in images]
    try:
        requests, exports, model = export_all(args, images)
        params = preprocessing_of(exports['fp32'])
        with tempfile.TemporaryDirectory(prefix='bench-') as tmp:
            work = Path(tmp)
            rows, load = in_process(model, exports, params, images, payloads,
                                    args.rounds, work)
            served, perf_note = served_paths(requests, payloads, params, args,
                                             work)
    except (ExportError, ServerError) as exc:
        print(f'bench: error: {exc}', file=sys.stderr)
        return 1
    from .report import write
    from detection.versions import provenance
    report = {'provenance': provenance(), **summarise(
        args, images, model, params, payloads, {**rows, **served}, perf_note,
        load)}
    write(report, args.out)
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
    from export.pipeline import Request, ensure
    repository = args.repository or args.out / 'model_repository'
    if not args.checkpoint.exists():
        from export.random_checkpoint import make
        make(args.config, args.checkpoint)
    requests = {key: Request(
        config=args.config, checkpoint=args.checkpoint, images=images,
        name=args.name, repository=repository, format=fmt,
        calibration=images, accuracy_gate=False) for key, fmt in FORMATS}
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
    fp32 = exports['fp32'] / 'model.onnx'
    variants = ort_options.variants(fp32, work)
    load = {'model.onnx, full optimisation': ort_options.load_seconds(
                fp32, ort_options.session_options()),
            'saved optimised model': ort_options.load_seconds(
                *variants['saved optimised model'])}
    by_payload = dict(zip(payloads, images))  # mmdet reads the file
    calls = {'pytorch': lambda b: mmdet_detections(model, by_payload[b]),
             'preprocessing only': lambda b: prepare(decode(b), params),
             'onnxruntime': OnnxDetector(fp32, params)}
    calls.update({f'onnxruntime {name}': OnnxDetector(path, params,
                                                      options=options)
                  for name, (path, options) in variants.items()})
    calls['onnxruntime int8'] = for_version(exports['int8'])
    calls['openvino'] = for_version(exports['openvino'])
    rows = {}
    with tqdm(total=len(payloads) * rounds * len(calls), unit='img',
              desc='in process', file=sys.stderr) as bar:
        for name in list(calls):
            rows[name] = timed(calls.pop(name), payloads, rounds, 1, bar)
    return rows, load


def served_paths(requests, payloads, params, args, work: Path):
    """Triton through the client at each concurrency, perf_analyzer on each
    detector, then the serving variants; rows and what perf_analyzer said."""
    from detection.preprocess import decode, prepare
    from tools.stack import served

    from . import perf_analyzer, serving_variants
    levels = [(requests['fp32'].served_name, '', c) for c in args.concurrency]
    levels += [(requests[key].served_name, f' {key}', c)
               for key in ('int8', 'openvino') for c in args.other_concurrency]
    sample = prepare(decode(payloads[0]), params)  # perf_analyzer's input
    repository = requests['fp32'].repository
    rows: Dict[str, Dict] = {}
    unstable: List[str] = []
    reason = perf_analyzer.unavailable()
    with served(repository) as stack, tqdm(
            total=len(payloads) * args.rounds * len(levels), unit='img',
            desc='triton', file=sys.stderr) as bar:
        for name, label, c in levels:
            with stack.detector(name) as det:
                rows[f'triton{label} c={c}'] = timed(
                    det.infer_bytes, payloads, args.rounds, c, bar)
        try:
            for key, request in requests.items() if reason is None else ():
                label = '' if key == 'fp32' else f' {key}'
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
                repository, requests['fp32'].detector_name, sample,
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
    achieved = {path: gflops * rows[path]['throughput_ips']
                for path in ('onnxruntime', 'openvino')}
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


def ratios(rows: Dict[str, Dict]) -> Dict[str, float]:
    """The comparisons the performance notes quote, from one run's rows."""
    def ips(path: str) -> float:
        return rows[path]['throughput_ips']

    def best(prefix: str) -> float:
        return max(v['throughput_ips'] for k, v in rows.items()
                   if k.startswith(prefix))

    def p50(path: str) -> float:
        return rows[path]['p50_ms']

    pairs = {
        'triton_c1_latency_vs_onnxruntime': (p50('triton c=1'), p50('onnxruntime')),
        'triton_best_throughput_vs_pytorch': (best('triton c='), ips('pytorch')),
        'onnxruntime_throughput_vs_pytorch': (ips('onnxruntime'), ips('pytorch')),
        'int8_throughput_vs_fp32': (ips('onnxruntime int8'), ips('onnxruntime')),
        'triton_int8_best_throughput_vs_pytorch': (best('triton int8 c='),
                                                   ips('pytorch')),
        'openvino_throughput_vs_onnxruntime': (ips('openvino'), ips('onnxruntime')),
        'triton_openvino_best_throughput_vs_pytorch': (best('triton openvino c='),
                                                       ips('pytorch')),
        'preprocessing_share_of_onnxruntime': (p50('preprocessing only'),
                                               p50('onnxruntime')),
    }
    return {name: round(a / b, 3) for name, (a, b) in pairs.items()}


if __name__ == '__main__':
    sys.exit(main())
