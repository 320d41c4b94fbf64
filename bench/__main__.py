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

ROOT = Path(__file__).resolve().parent.parent


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
                   default=ROOT / 'configs/mmdet/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    p.add_argument('-w', '--checkpoint', type=Path,
                   default=ROOT / 'checkpoints/random_r50_fpn_seed0.pth')
    p.add_argument('--images', type=Path, nargs='+',
                   default=[ROOT / 'assets/samples'])
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
    p.add_argument('--out', type=Path, default=ROOT / 'results' / 'bench')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    repository = args.repository or args.out / 'model_repository'
    from client import TritonDetector
    from detection.images import image_files
    from detection.preprocess import Preprocessing, decode, prepare
    from detection.runtime import OnnxDetector, for_version
    from export import model as detector_model
    from export.__main__ import setup_logging
    from export.errors import ExportError
    from export.parity import mmdet_detections
    from export.pipeline import Request, ensure
    from serve.server import TritonServer

    from . import ort_options, perf_analyzer, serving_variants
    from .floor import model_gflops, peak_gflops

    setup_logging(verbose=False)
    images = image_files(args.images)
    payloads = [p.read_bytes() for p in images]
    if not args.checkpoint.exists():
        from export.random_checkpoint import make
        make(args.config, args.checkpoint)
    # The int8 model's speed does not depend on its weights' values, but
    # random weights cannot pass the mAP gate: it is exported ungated, into
    # this scratch repository only (`make eval` judges int8 accuracy on the
    # trained demo detector).
    requests = {key: Request(
        config=args.config, checkpoint=args.checkpoint, images=images,
        name=args.name, repository=repository, format=fmt,
        calibration=images, accuracy_gate=False)
        for key, fmt in (('fp32', 'onnxruntime'), ('int8', 'onnxruntime-int8'),
                         ('openvino', 'openvino'))}
    try:
        exports = {precision: ensure(request)
                   for precision, request in requests.items()}
        model, _ = detector_model.load(args.config, args.checkpoint)
    except ExportError as exc:
        print(f'bench: error: {exc}', file=sys.stderr)
        return 1
    meta = json.loads((exports['fp32'] / 'metadata.json').read_text())
    params = Preprocessing.from_dict(meta['preprocessing'])
    fp32 = exports['fp32'] / 'model.onnx'

    paths: Dict[str, Dict] = {}
    with tempfile.TemporaryDirectory(prefix='bench-') as tmp:
        work = Path(tmp)
        variants = ort_options.variants(fp32, work)
        load = {'model.onnx, full optimisation': ort_options.load_seconds(
                    fp32, ort_options.session_options()),
                'saved optimised model': ort_options.load_seconds(
                    *variants['saved optimised model'])}
        in_process = {'onnxruntime': OnnxDetector(fp32, params)}
        in_process.update({f'onnxruntime {name}': OnnxDetector(
            path, params, options=options)
            for name, (path, options) in variants.items()})
        in_process['onnxruntime int8'] = for_version(exports['int8'])
        in_process['openvino'] = for_version(exports['openvino'])
        served = [(requests['fp32'].served_name, '', c) for c in args.concurrency]
        served += [(requests[key].served_name, f' {key}', c)
                   for key in ('int8', 'openvino')
                   for c in args.other_concurrency]

        per_path = len(payloads) * args.rounds
        total = per_path * (2 + len(in_process) + len(served))
        with tqdm(total=total, unit='img', desc='bench', file=sys.stderr) as bar:
            by_payload = dict(zip(payloads, images))  # mmdet reads the file
            paths['pytorch'] = timed(
                lambda b: mmdet_detections(model, by_payload[b]),
                payloads, args.rounds, 1, bar)
            paths['preprocessing only'] = timed(
                lambda b: prepare(decode(b), params), payloads, args.rounds, 1,
                bar)
            for name, detector in in_process.items():
                paths[name] = timed(detector, payloads, args.rounds, 1, bar)
            del in_process
            unstable: List[str] = []
            sample = prepare(decode(payloads[0]), params)  # perf_analyzer's
            server = TritonServer.on_free_ports(repository)
            server.start()
            url = f'127.0.0.1:{server.grpc_port}'
            try:
                for name, label, c in served:
                    with TritonDetector(url, name, wait=60) as det:
                        paths[f'triton{label} c={c}'] = timed(
                            det.infer_bytes, payloads, args.rounds, c, bar)
                reason = perf_analyzer.unavailable()
                if reason is None:
                    bar.set_description('perf_analyzer')
                    for key, request in requests.items():
                        label = '' if key == 'fp32' else f' {key}'
                        paths.update(perf_analyzer.run(
                            url, request.detector_name, sample,
                            args.perf_concurrency, work, label))
                        unstable += [f'{key} c={c}'
                                     for c in args.perf_concurrency
                                     if f'perf_analyzer{label} c={c}' not in paths]
            except perf_analyzer.PerfAnalyzerError as exc:
                reason = str(exc)
            finally:
                server.stop()
            if reason is None:
                bar.set_description('serving variants')
                try:
                    paths.update(serving_variants.measure(
                        repository, requests['fp32'].detector_name, sample,
                        args.variant_concurrency, work))
                except perf_analyzer.PerfAnalyzerError as exc:
                    reason = str(exc)

    sizes = [prepare(decode(p), params).tensor.shape[1:] for p in payloads]
    gflops = float(np.mean([model_gflops(model, hw) for hw in sizes]))
    peak = peak_gflops()
    top = max(peak.values())

    def achieved(path: str) -> float:
        """GFLOP/s of an in-process path, preprocessing included."""
        return gflops * paths[path]['throughput_ips']

    def best(prefix: str) -> Dict:
        return max((v for k, v in paths.items() if k.startswith(prefix)),
                   key=lambda v: v['throughput_ips'])
    best_triton = best('triton c=')

    def ratio(a: float, b: float) -> float:
        return round(a / b, 3)

    report = {
        'images': [p.name for p in images], 'rounds': args.rounds,
        'model': str(args.config.name), 'paths': paths,
        'perf_analyzer': reason or ('ran' + (
            f'; no stable measurement at {", ".join(unstable)}'
            if unstable else '')),
        'session_load_seconds': load,
        'model_gflop_per_image': round(gflops, 1),
        'machine_peak_gflops': peak,
        'onnxruntime_achieved_gflops': round(achieved('onnxruntime'), 1),
        'onnxruntime_fraction_of_peak': round(achieved('onnxruntime') / top, 3),
        'openvino_achieved_gflops': round(achieved('openvino'), 1),
        'openvino_fraction_of_peak': round(achieved('openvino') / top, 3),
        'ratios': {
            'triton_c1_latency_vs_onnxruntime': ratio(
                paths['triton c=1']['p50_ms'], paths['onnxruntime']['p50_ms']),
            'triton_best_throughput_vs_pytorch': ratio(
                best_triton['throughput_ips'], paths['pytorch']['throughput_ips']),
            'onnxruntime_throughput_vs_pytorch': ratio(
                paths['onnxruntime']['throughput_ips'],
                paths['pytorch']['throughput_ips']),
            'int8_throughput_vs_fp32': ratio(
                paths['onnxruntime int8']['throughput_ips'],
                paths['onnxruntime']['throughput_ips']),
            'triton_int8_best_throughput_vs_pytorch': ratio(
                best('triton int8 c=')['throughput_ips'],
                paths['pytorch']['throughput_ips']),
            'openvino_throughput_vs_onnxruntime': ratio(
                paths['openvino']['throughput_ips'],
                paths['onnxruntime']['throughput_ips']),
            'triton_openvino_best_throughput_vs_pytorch': ratio(
                best('triton openvino c=')['throughput_ips'],
                paths['pytorch']['throughput_ips']),
            'preprocessing_share_of_onnxruntime': ratio(
                paths['preprocessing only']['p50_ms'],
                paths['onnxruntime']['p50_ms']),
        },
    }
    from .report import write
    write(report, args.out)
    print((args.out / 'bench.md').read_text())
    return 0


if __name__ == '__main__':
    sys.exit(main())
