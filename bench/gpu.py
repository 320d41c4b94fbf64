"""python -m bench.gpu: the served detector against PyTorch eager on one
device, side by side in one run. Made for a GPU host (``--device cuda:N``);
it runs on a CPU too (``--device cpu``), which is how it is tested.

The same encoded images, decoding included on every path, through:
(a) PyTorch eager: torchvision's Faster R-CNN R50-FPN, random weights, the
exported model's resize bounds, 100 detections an image (mmdet's own
model needs mmcv's CUDA ops, which a GPU host rarely has built;
``--no-eager`` leaves this path out where torchvision cannot load, as on a
CPU-only torch: PyPI's torchvision wheels link CUDA torch's libraries);
(b) the exported graph in process, ONNX Runtime on the device, at batch 1
and in batches of one image size;
(c) the served ensemble with its detector placed on the device, at each
concurrency, Triton's statistics splitting each request's time.
Parity comes first: the device's detections against ONNX Runtime's CPU
ones, in process and served (the export checked the CPU graph against
mmdet; its metadata.json holds that result, copied into the report).

The repository is one exported on any host (a GPU host often has no mmdet):
its detector is placed on ``--device`` in a copy under ``--out``, graph
files hard-linked. Needs no mmdet, mmdeploy nor pycocotools. Writes
gpu.json and gpu.md in ``--out``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
from tqdm import tqdm
from triton_frcnn.files import given_images

from detection import paths
from detection.versions import package_versions
from export.device import Device
from export.ensemble import composing

PACKAGES = ('torch', 'torchvision', 'onnxruntime', 'onnxruntime-gpu',
            'numpy', 'opencv-python-headless', 'tritonclient')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='python -m bench.gpu', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('-r', '--repository', type=Path, required=True,
                   help='an exported repository (python -m export)')
    p.add_argument('-m', '--model', default='faster_rcnn',
                   help='the served ensemble\'s name (default: %(default)s)')
    p.add_argument('--images', type=Path, nargs='+', default=[paths.SAMPLES])
    p.add_argument('--device', type=Device.parse, default=Device('cuda'),
                   help='cpu, cuda or cuda:N (default: cuda)')
    p.add_argument('--tf32', action='store_true',
                   help='TF32 on every path (default: exact fp32, TF32 off)')
    p.add_argument('--batch', type=int, nargs='+', default=[1, 4, 8],
                   help='in-process and eager batch sizes')
    p.add_argument('--rounds', type=int, default=5,
                   help='timed passes over the images per batch size')
    p.add_argument('--concurrency', type=int, nargs='+',
                   default=[1, 2, 4, 8, 16])
    p.add_argument('--seconds', type=float, default=20.0,
                   help='served: measurement window per concurrency')
    p.add_argument('--warmup', type=float, default=5.0)
    p.add_argument('--no-eager', action='store_true',
                   help='leave PyTorch eager out (it needs torchvision)')
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'gpu')
    args = p.parse_args(argv)
    try:
        args.images = given_images(args.images)
    except ValueError as exc:
        p.error(str(exc))
    if min(*args.batch, *args.concurrency, args.rounds) < 1:
        p.error('--batch, --concurrency and --rounds must be 1 or more')
    if args.seconds <= 0 or args.warmup < 0:
        p.error('--seconds must be more than 0 and --warmup 0 or more')
    return args


def host(device: Device) -> Dict[str, object]:
    """The card and driver as nvidia-smi names them (the CPU's model on a
    CPU run) and the packages: numbers mean nothing without them."""
    if device.gpu:
        line = subprocess.run(
            ['nvidia-smi', f'--id={device.index}', '--format=csv,noheader',
             '--query-gpu=name,driver_version'], capture_output=True,
            text=True, timeout=30).stdout
        name, driver = [field.strip() for field in line.split(',')]
    else:
        cpus = [line.split(':', 1)[1].strip() for line in Path(
            '/proc/cpuinfo').read_text().splitlines()
            if line.startswith('model name')]
        name, driver = f'{cpus[0]} ({len(cpus)} CPUs)', None
    return {'device': name, 'driver': driver,
            'versions': package_versions(PACKAGES)}


def place_repository(source: Path, target: Path, model: str, device: Device,
                     tf32: bool) -> Path:
    """A copy of ``model``'s folders in ``source``, set up for this host: its
    detector placed on ``device`` (instance group, batching, CUDA settings)
    and its preprocessing given this host's instances; returns the
    detector's version folder."""
    from export.capacity import Capacity, available_cpus
    from export.triton_config import parse, place, to_text
    shutil.rmtree(target, ignore_errors=True)
    for part in composing(model) + [model]:
        shutil.copytree(source / part, target / part, copy_function=os.link)
    pre_name, detector_name, _ = composing(model)
    detector = parse((target / detector_name / 'config.pbtxt').read_text())
    version = target / detector.name / str(
        detector.version_policy.specific.versions[0])
    exported = json.loads((version / 'metadata.json').read_text())['capacity']
    capacity = Capacity(**{**exported, 'cpus': available_cpus(),
                           'gpu': device.gpu, 'batch_requests': None})
    place(detector, capacity, device,
          detector.dynamic_batching.max_queue_delay_microseconds or 2000, tf32)
    rewrite(target / detector.name / 'config.pbtxt', to_text(detector))
    pre_path = target / pre_name / 'config.pbtxt'
    pre = parse(pre_path.read_text())
    pre.instance_group[0].count = capacity.preprocess_instances
    rewrite(pre_path, to_text(pre))
    return version


def missing(repository: Path, model: str) -> str:
    """Why ``model`` cannot be placed from ``repository``, or ''."""
    absent = [part for part in composing(model) + [model]
              if not (repository / part / 'config.pbtxt').is_file()]
    return (f'{repository} holds no exported {model!r} ({", ".join(absent)} '
            'missing; python -m export -r REPO -m NAME writes them)'
            if absent else '')


def rewrite(path: Path, text: str) -> None:
    """A new file, not new contents: ``path`` is a hard link into the
    repository the copy was made from."""
    path.unlink()
    path.write_text(text)


def parity(reference: Callable, candidate: Callable,
           payloads: Sequence[bytes], names: Sequence[str]) -> Dict[str, Dict]:
    """Per image: the fraction of the reference's top-100 the candidate
    reproduces within 0.5 px and 1e-3 score, and the largest differences."""
    from export.parity import match
    rows = {}
    for name, payload in zip(names, payloads):
        m = match(reference(payload), candidate(payload), name)
        rows[name] = {'fraction': round(m.fraction, 4),
                      'max_box_diff': round(m.max_box_diff, 5),
                      'max_score_diff': round(m.max_score_diff, 6)}
    return rows


def batched(call: Callable[[List[bytes]], object], payloads: Sequence[bytes],
            batches: Sequence[int], rounds: int, label: str) -> Dict[str, Dict]:
    """ms per image and images/s of ``call`` on batches of one image
    repeated (one padded size, as a request batch must be), after a warm-up
    pass on each (a new size makes cuDNN choose its algorithms anew)."""
    from .__main__ import timed
    rows = {}
    for size in batches:
        chunks = [[payload] * size for payload in payloads]
        with tqdm(total=len(chunks) * rounds, unit='batch', file=sys.stderr,
                  desc=f'{label} batch {size}') as bar:
            stats = timed(call, chunks, rounds, 1, bar)
        ips = stats['throughput_ips'] * size
        rows[f'{label} batch {size}'] = {
            'ms_per_image': round(1000 / ips, 2), 'images_per_s': round(ips, 2),
            'p50_ms_per_batch': stats['p50_ms']}
    return rows


def eager_unavailable() -> str:
    """Why torchvision cannot run the eager baseline here, or ''."""
    try:
        import torchvision  # noqa: F401  (its import loads its compiled ops)
    except (ImportError, OSError, RuntimeError) as exc:
        why = (str(exc).strip().splitlines() or [''])[0]
        return (f'PyTorch eager needs a working torchvision ({type(exc).__name__}: '
                f'{why}); --no-eager leaves it out')
    return ''


def eager_model(params, device: Device, tf32: bool):
    """torchvision's R50-FPN, seeded random weights, resizing as the export
    does; a call takes encoded images and returns their boxes on the host."""
    import torch
    import torchvision
    from detection.preprocess import decode
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    target = str(device)
    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=min(params.scale),
        max_size=max(params.scale), box_score_thresh=0.0,
        box_detections_per_img=100).eval().to(target)

    def call(chunk: List[bytes]) -> list:
        images = [torch.from_numpy(np.ascontiguousarray(decode(b)[..., ::-1]))
                  .to(target).permute(2, 0, 1).float().div_(255) for b in chunk]
        with torch.inference_mode():
            return [{k: v.cpu() for k, v in out.items()} for out in model(images)]
    return call


def served(version: Path, model: str, reference: Callable,
           payloads: Sequence[bytes], names: Sequence[str],
           args: argparse.Namespace) -> Dict:
    """The placed repository served: parity against ``reference``, then
    each concurrency through the ensemble."""
    from serve.server import TritonServer
    from triton_frcnn.client import TritonDetector

    from .load import drive
    server = TritonServer.on_free_ports(version.parent.parent,
                                        workdir=args.out / 'triton')
    try:
        server.start()
        url = f'127.0.0.1:{server.grpc_port}'
        with TritonDetector(url, model, wait=120) as det:
            checked = parity(reference, det.infer_bytes, payloads, names)
        levels = [asyncio.run(drive(
            [url], model, composing(model), payloads, c, args.warmup,
            args.seconds)).row() for c in args.concurrency]
    finally:
        server.stop()
    return {'parity': checked, 'levels': levels, 'report': server.report}


def main(argv=None) -> int:
    args = parse_args(argv)
    from serve.server import ServerError, interrupt_on_sigterm
    reason = (args.device.unavailable() or missing(args.repository, args.model)
              or ('' if args.no_eager else eager_unavailable()))
    if reason:
        print(f'bench.gpu: error: {reason}', file=sys.stderr)
        return 1
    images = args.images
    interrupt_on_sigterm()
    payloads = [p.read_bytes() for p in images]
    names = [p.name for p in images]
    version = place_repository(args.repository, args.out / 'model_repository',
                               args.model, args.device, args.tf32)
    from detection.runtime import for_version
    cpu = for_version(version)  # the reference
    on_device = for_version(version, args.device.providers(args.tf32))
    meta = json.loads((version / 'metadata.json').read_text())
    rows = batched(on_device.detect, payloads,
                   args.batch, args.rounds, 'onnxruntime')
    if not args.no_eager:
        rows.update(batched(eager_model(cpu.params, args.device, args.tf32),
                            payloads, args.batch, args.rounds, 'pytorch eager'))
    try:
        serving = served(version, args.model, cpu, payloads, names, args)
    except ServerError as exc:
        print(f'bench.gpu: error: {exc}', file=sys.stderr)
        return 1
    report = summarise(args, host(args.device), meta, names, rows,
                       parity(cpu, on_device, payloads, names), serving)
    write(report, args.out)
    print((args.out / 'gpu.md').read_text())
    return 0


def summarise(args, machine: Dict, meta: Dict, names: List[str], rows: Dict,
              in_process: Dict, serving: Dict) -> Dict:
    """The report and its ratios: best served throughput over best eager
    throughput at the same precision (None without eager), and pre/post's
    share of a request's time in the server at the best concurrency."""
    from .load import share
    model = args.model
    pre, _, post = composing(model)
    best = max(serving['levels'], key=lambda row: row['throughput'])
    fastest = {kind: max((v['images_per_s'] for k, v in rows.items()
                          if k.startswith(kind)), default=None)
               for kind in ('onnxruntime', 'pytorch eager')}
    eager = fastest['pytorch eager']
    return {
        **machine, 'precision': 'tf32' if args.tf32 else 'fp32',
        'images': names, 'model': model, 'served_device': str(args.device),
        'export_parity_vs_mmdet': meta.get('parity'),
        'parity': {'in_process': in_process, 'served': serving['parity']},
        'paths': rows, 'served': serving['levels'],
        'server_report': serving['report'],
        'ratios': {
            'served_vs_pytorch': eager and round(best['throughput'] / eager, 3),
            'onnxruntime_vs_pytorch': eager and round(
                fastest['onnxruntime'] / eager, 3),
            'prepost_share_at_best': round(share(
                best['models'], [pre, post]), 4),
            'best_concurrency': best['concurrency']},
    }


def markdown(report: Dict) -> str:
    ratios = report['ratios']
    driver = f', driver {report["driver"]}' if report['driver'] else ''
    lines = [f'### {report["model"]} on {report["device"]} '
             f'({report["precision"]}{driver})', '',
             '| path | ms/image | images/s |', '| --- | --- | --- |']
    lines += [f'| {name} | {row["ms_per_image"]} | {row["images_per_s"]} |'
              for name, row in report['paths'].items()]
    lines += [f'| served c={row["concurrency"]} | {row["p50_ms"]} (p50) | '
              f'{row["throughput"]} |' for row in report['served']]
    worst = {kind: min(r['fraction'] for r in rows.values())
             for kind, rows in report['parity'].items()}
    against = (f'Served / PyTorch eager, best throughput: '
               f'**{ratios["served_vs_pytorch"]}x** (served at '
               f'c={ratios["best_concurrency"]}); ONNX Runtime in process / '
               f'eager: {ratios["onnxruntime_vs_pytorch"]}x'
               if ratios['served_vs_pytorch'] else
               f'PyTorch eager left out (--no-eager); best served at '
               f'c={ratios["best_concurrency"]}')
    lines += ['', f'{against}; pre/post share of request time at that c: '
              f'{ratios["prepost_share_at_best"]:.1%}.',
              f'Parity against ONNX Runtime on the CPU (worst image, top-100 '
              f'within 0.5 px / 1e-3): in process {worst["in_process"]:.1%}, '
              f'served {worst["served"]:.1%}.', '']
    return '\n'.join(lines)


def write(report: Dict, out: Path) -> None:
    from triton_frcnn.files import write_atomic
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / 'gpu.json', json.dumps(report, indent=2) + '\n')
    write_atomic(out / 'gpu.md', markdown(report))


if __name__ == '__main__':
    sys.exit(main())
