"""python -m bench: the same images through every path, in one run.

(a) mmdet's ``inference_detector`` in PyTorch (the seed tutorial's path);
(b) the exported model in process with ONNX Runtime, preprocessing included;
(c) Triton end to end through the client (gRPC, image bytes in, boxes out) at
each concurrency. Each path is warmed up first. Also measured in the same run:
the machine's fp32 matmul and conv peak, and the model's FLOPs at the
benchmark size, so achieved GFLOP/s is reported as a fraction of the peak.
Writes a markdown table, a PNG plot and JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
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
                   default=ROOT / 'model_repository')
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--concurrency', type=int, nargs='+', default=[1, 2, 4, 8])
    p.add_argument('--out', type=Path, default=ROOT / 'results' / 'bench')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from client import TritonDetector
    from detection.images import image_files
    from detection.preprocess import Preprocessing, decode, prepare
    from detection.runtime import OnnxDetector
    from export import model as detector_model
    from export.__main__ import setup_logging
    from export.errors import ExportError
    from export.parity import mmdet_detections
    from export.pipeline import Request, ensure
    from serve.server import TritonServer

    from .floor import model_gflops, peak_gflops

    setup_logging(verbose=False)
    images = image_files(args.images)
    payloads = [p.read_bytes() for p in images]
    if not args.checkpoint.exists():
        from export.random_checkpoint import make
        make(args.config, args.checkpoint)
    try:
        version_dir = ensure(Request(config=args.config, checkpoint=args.checkpoint,
                                     images=images, name=args.name,
                                     repository=args.repository))
        model, _ = detector_model.load(args.config, args.checkpoint)
    except ExportError as exc:
        print(f'bench: error: {exc}', file=sys.stderr)
        return 1
    meta = json.loads((version_dir / 'metadata.json').read_text())
    params = Preprocessing.from_dict(meta['preprocessing'])
    onnx = OnnxDetector(version_dir / 'model.onnx', params)

    paths: Dict[str, Dict] = {}
    per_path = len(payloads) * args.rounds
    total = per_path * (2 + len(args.concurrency))
    with tqdm(total=total, unit='img', desc='bench', file=sys.stderr) as bar:
        by_payload = dict(zip(payloads, images))  # mmdet reads the file
        paths['pytorch'] = timed(lambda b: mmdet_detections(model, by_payload[b]),
                                 payloads, args.rounds, 1, bar)
        paths['onnxruntime'] = timed(onnx, payloads, args.rounds, 1, bar)
        server = TritonServer.on_free_ports(args.repository)
        server.start()
        try:
            with TritonDetector(f'127.0.0.1:{server.grpc_port}', args.name,
                                wait=60) as det:
                for c in args.concurrency:
                    paths[f'triton c={c}'] = timed(det.infer_bytes, payloads,
                                                   args.rounds, c, bar)
        finally:
            server.stop()

    sizes = [prepare(decode(p), params).tensor.shape[1:] for p in payloads]
    gflops = float(np.mean([model_gflops(model, hw) for hw in sizes]))
    peak = peak_gflops()
    ort_seconds = 1 / paths['onnxruntime']['throughput_ips']
    best_triton = max((v for k, v in paths.items() if k.startswith('triton')),
                      key=lambda v: v['throughput_ips'])
    report = {
        'images': [p.name for p in images], 'rounds': args.rounds,
        'model': str(args.config.name), 'paths': paths,
        'model_gflop_per_image': round(gflops, 1),
        'machine_peak_gflops': peak,
        'onnxruntime_achieved_gflops': round(gflops / ort_seconds, 1),
        'onnxruntime_fraction_of_peak': round(
            gflops / ort_seconds / max(peak.values()), 3),
        'ratios': {
            'triton_c1_latency_vs_onnxruntime': round(
                paths['triton c=1']['p50_ms'] / paths['onnxruntime']['p50_ms'], 3),
            'triton_best_throughput_vs_pytorch': round(
                best_triton['throughput_ips'] / paths['pytorch']['throughput_ips'], 3),
            'onnxruntime_throughput_vs_pytorch': round(
                paths['onnxruntime']['throughput_ips']
                / paths['pytorch']['throughput_ips'], 3),
        },
    }
    from .report import write
    write(report, args.out)
    print((args.out / 'bench.md').read_text())
    return 0


if __name__ == '__main__':
    sys.exit(main())
