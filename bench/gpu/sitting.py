"""python -m bench.gpu: the one GPU sitting, unattended, in one process.

GPU time comes rarely and in one short loan, so everything the GPU path must
show is measured in one run that needs no second try, most important first,
and the report is written again after every step (a sitting cut short keeps
what it measured):

1. PyTorch eager (torchvision's R50-FPN, seeded random weights, the
   exported model's resize bounds, 100 detections an image), with TF32 off
   and on; the exported graph in ONNX Runtime in process on the device.
   The same encoded images, decoding included, on every path.
2. fp32 served as placed on the card: parity per photo against ONNX Runtime
   on the CPU, throughput at each concurrency, pre/post's share of a
   request's time (Triton's statistics); then the same for TF32, fp16 (the
   graph in ``--fp16``) and shape buckets (the fewest that hold every image).
3. Their mAP gates: the trained demo detector (``--gate-model``; random
   weights score no AP) in process on the device, fp32 against TF32, fp16
   and buckets, on annotated images.

The repository is one exported on any host (a GPU host has no mmdet): the
variants are placed on ``--device`` side by side in one copy under ``--out``
(MODEL_fp32, MODEL_tf32, ...), graph files hard-linked, and served by one
server. ``python -m bench.gpu.pack`` makes everything a GPU host needs;
docs/gpu-sitting.md says how it gets there and what to run. ``--device cpu``
runs it all on a CPU (TF32 is then fp32), which is how the suite checks it.
Writes performance-gpu.json and .md in ``--out``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from detection import paths
from detection.preprocess import two_buckets
from detection.runtime import for_version
from ground import cli
from ground.results import headed
from export.device import Device
from export.repository import composing
from export.formats import FORMATS

from .report import PACKAGES, save
from .ort_placement import placement as node_placement
from .placement import missing, place_repository, version_of
from ..timing import timed

VARIANTS = ('fp32', 'tf32', 'fp16', 'buckets')
# the largest AP drop each variant's gate allows: its format's, as the
# export judges it (buckets: a canvas on the fp32 format)
MAX_DROP = {variant: FORMATS[name].max_map_drop for variant, name in (
    ('tf32', 'onnxruntime-tf32'), ('fp16', 'onnxruntime-fp16'),
    ('buckets', 'onnxruntime'))}


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser('bench.gpu', __doc__)
    p.add_argument('-r', '--repository', type=Path, required=True,
                   help='a repository holding -m and --gate-model, exported')
    p.add_argument('-m', '--model', default='r50',
                   help='the served ensemble\'s name (default: %(default)s)')
    p.add_argument('--gate-model', default='demo',
                   help='a trained detector\'s ensemble, for the mAP gates')
    p.add_argument('--fp16', type=Path, required=True,
                   help='a folder holding MODEL.onnx, the fp16 graph, for -m '
                        'and --gate-model (python -m bench.gpu.pack writes it)')
    p.add_argument('--ann', type=Path, required=True,
                   help='COCO annotations of the gate\'s images')
    p.add_argument('--gate-images', type=Path, required=True)
    p.add_argument('--gate-limit', type=int, default=100)
    p.add_argument('--images', type=Path, nargs='+', default=[paths.SAMPLES])
    p.add_argument('--device', type=Device.parse, default=Device('cuda'),
                   help='cpu, cuda or cuda:N (default: cuda)')
    p.add_argument('--variants', nargs='+', choices=VARIANTS,
                   default=list(VARIANTS), help='served and gated, in order')
    p.add_argument('--batch', type=int, nargs='+', default=[1, 4],
                   help='in-process and eager batch sizes')
    p.add_argument('--rounds', type=int, default=3,
                   help='timed passes over the images per batch size')
    p.add_argument('--concurrency', type=int, nargs='+', default=[1, 8])
    p.add_argument('--seconds', type=float, default=8.0,
                   help='served: measurement window per concurrency')
    p.add_argument('--warmup', type=float, default=3.0)
    p.add_argument('--no-eager', action='store_true',
                   help='leave PyTorch eager out (it needs torchvision)')
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'gpu')
    args = p.parse_args(argv)
    args.images = cli.images(p, args.images)
    cli.at_least(p, 1, '--batch, --concurrency, --rounds and --gate-limit',
                 *args.batch, *args.concurrency, args.rounds, args.gate_limit)
    if args.seconds <= 0 or args.warmup < 0:
        p.error('--seconds must be more than 0 and --warmup 0 or more')
    return args


def refusal(args: argparse.Namespace) -> str:
    """Why the sitting cannot start, found before any of it runs."""
    graphs = [args.fp16 / f'{m}.onnx' for m in (args.model, args.gate_model)]
    return (args.device.unavailable()
            or missing(args.repository, args.model)
            or missing(args.repository, args.gate_model)
            or next((f'no fp16 graph {g}' for g in graphs if not g.is_file()), '')
            or next((f'no {p}' for p in (args.ann, args.gate_images)
                     if not p.exists()), '')
            or ('' if args.no_eager else eager_unavailable()))


def host(device: Device) -> Dict[str, object]:
    """The card and driver as nvidia-smi names them (None on a CPU run),
    and the ONNX Runtime that was imported (a GPU host may have the CPU
    package installed beside it)."""
    import onnxruntime
    card = driver = None
    if device.gpu:
        line = subprocess.run(
            ['nvidia-smi', f'--id={device.index}', '--format=csv,noheader',
             '--query-gpu=name,driver_version'], capture_output=True,
            text=True, timeout=30).stdout
        card, driver = [field.strip() for field in line.split(',')]
    return {'card': card, 'driver': driver,
            'onnxruntime': {'version': onnxruntime.__version__,
                            'providers': onnxruntime.get_available_providers()}}


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


def serve_variants(args: argparse.Namespace, reference,
                   payloads: Sequence[bytes], names: Sequence[str],
                   report: Dict) -> Dict:
    """Every variant placed in one repository as MODEL_VARIANT and served by
    one server (one start, one warm-up, on a card or here), then measured in
    turn into ``report['served']``, the report saved after each; a variant
    that fails is recorded and the next one measured. The served rows."""
    from serve.server import TritonServer
    repository = args.out / 'repository'
    for variant in args.variants:
        place_repository(args.repository, repository, args.model, args.device,
                         **how_placed(variant, args, reference.params,
                                      args.model),
                         as_name=f'{args.model}_{variant}')
    with TritonServer.on_free_ports(repository,
                                    workdir=args.out / 'triton') as server:
        report['server_report'] = server.report
        for variant in args.variants:
            report['served'][variant] = attempt(lambda: serve_variant(
                f'{args.model}_{variant}', server, args, reference, payloads,
                names))
            save(report, args.out)
    return report['served']


def how_placed(variant: str, args: argparse.Namespace, params,
              model: str) -> Dict:
    """How ``variant`` differs from fp32 where it is placed."""
    return {'tf32': variant == 'tf32',
            'canvas': two_buckets(params) if variant == 'buckets' else (),
            'graph': args.fp16 / f'{model}.onnx' if variant == 'fp16' else None}


def serve_variant(model: str, server, args: argparse.Namespace, reference,
                  payloads: Sequence[bytes], names: Sequence[str]) -> Dict:
    """One placement served: parity against the CPU, throughput at each
    concurrency, where a request's time goes at the best one."""
    from triton_frcnn.client import TritonDetector

    from ..load import drive, share
    url = f'127.0.0.1:{server.grpc_port}'
    with TritonDetector(url, model, wait=120) as det:
        checked = parity(reference, det.infer_bytes, payloads, names)
    levels = [asyncio.run(drive([url], model, composing(model), payloads, c,
                                args.warmup, args.seconds)).row()
              for c in args.concurrency]
    best = max(levels, key=lambda row: row['throughput'])
    pre, _, post = composing(model)
    return {'parity': checked, 'levels': levels,
            'best_throughput': best['throughput'],
            'best_concurrency': best['concurrency'],
            'prepost_share_at_best': round(share(best['models'], [pre, post]), 4)}


def gates(args: argparse.Namespace) -> Dict:
    """AP of the gate model in process on the device: fp32 and each
    variant, every image taken in turn by all of them."""
    from detection.coco import CocoSplit
    from export.accuracy import Run, box_ap
    version = version_of(args.repository, args.gate_model)
    reference = for_version(version)
    classes = (version / 'labels.txt').read_text().split()
    runs = {}
    for variant in dict.fromkeys(['fp32', *args.variants]):
        how = how_placed(variant, args, reference.params, args.gate_model)
        runs[variant] = Run(how['graph'] or version / 'model.onnx',
                            replace(reference.params, canvas=how['canvas']),
                            args.device.providers(how['tf32']))
    split = CocoSplit(args.ann, args.gate_images, args.gate_limit)
    measured = dict(zip(runs, box_ap(list(runs.values()), split, classes)))
    fp32_ap = measured['fp32'][0]
    rows = {}
    for variant, (ap, ms) in measured.items():
        rows[variant] = {'ap': round(ap, 2), 'ms_per_image': round(ms, 2)}
        if variant != 'fp32':
            rows[variant].update(drop=round(fp32_ap - ap, 2),
                                 max_drop=MAX_DROP[variant],
                                 passed=fp32_ap - ap <= MAX_DROP[variant])
    return {'model': args.gate_model, 'images': len(split.image_ids),
            'rows': rows}


def in_process(args: argparse.Namespace, version: Path, params,
               payloads: Sequence[bytes]) -> Dict[str, Dict]:
    """ONNX Runtime on the device, then eager with TF32 off and on."""
    calls: Dict[str, Callable] = {'onnxruntime fp32': for_version(
        version, args.device.providers(False)).detect}
    for tf32 in ([] if args.no_eager else [False, True]):
        calls[f'pytorch eager {"tf32" if tf32 else "fp32"}'] = eager_model(
            params, args.device, tf32)
    out = {}
    for label, call in calls.items():
        rows = batched(call, payloads, args.batch, args.rounds, label)
        out[label] = {n: rows[f'{label} batch {n}'] for n in args.batch}
    return out


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    reason = refusal(args)
    if reason:
        return cli.error('bench.gpu', reason)
    return cli.run('bench.gpu', lambda: sitting(args))


def attempt(step: Callable[[], Dict]) -> Dict:
    """A step's rows, or the one line of why it failed: the sitting goes on
    to the next step (there is no second sitting)."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001  anything a server or a runtime raises
        return {'error': f'{type(exc).__name__}: '
                         f'{(str(exc).strip().splitlines() or [""])[0]}'}


def sitting(args: argparse.Namespace) -> int:
    payloads = [p.read_bytes() for p in args.images]
    names = [p.name for p in args.images]
    version = version_of(args.repository, args.model)
    cpu = for_version(version)  # the reference
    report = headed({
        **host(args.device), 'model': args.model, 'images': names,
        'served_device': str(args.device),
        'export_parity_vs_mmdet': json.loads(
            (version / 'metadata.json').read_text()).get('parity'),
        'placement': attempt(lambda: node_placement(version / 'model.onnx',
                                                    args.device)),
        'paths': in_process(args, version, cpu.params, payloads),
        'served': {}, 'gates': None}, PACKAGES)
    save(report, args.out)
    served = attempt(lambda: serve_variants(args, cpu, payloads, names, report))
    if 'error' in served:  # the server itself: every variant says why
        report['served'] = {variant: served for variant in args.variants}
    report['gates'] = attempt(lambda: gates(args))
    save(report, args.out)
    print((args.out / 'performance-gpu.md').read_text())
    failed = [v for v, row in report['served'].items() if 'error' in row]
    return 1 if failed or 'error' in report['gates'] else 0
