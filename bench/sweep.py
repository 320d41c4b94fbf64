"""python -m bench.sweep (``make load``): throughput and latency as clients
are added, c = 1 ... 64, on the served ensemble with real encoded images.

Two models, exported into the sweep's own repository: the committed demo
detector (on 16 synthetic val images) and the full-size R50-FPN with seeded
random weights (on the four sample photos, three canvases: what ``make
bench`` measures). Per level:
throughput, p50/p95/p99 latency (retries included), errors, rejected
("server busy") refusals, and each composing model's queue and compute time
from Triton's statistics; perf_analyzer drives the demo ensemble too, up to
c=16. Writes ``load.json``, ``load.md`` and ``load.png`` in ``--out``; a
sweep of one model (``--models``) keeps the other's results there.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Dict, List

from detection import paths
from ground import cli
from ground.results import write_report

LEVELS = [1, 2, 4, 8, 16, 32, 64]
# per model: window seconds (~400 demo images, ~40 R50-FPN ones: the R50-FPN
# takes ~2.3 s an image on 2 cores)
WINDOWS = {'demo': 40.0, 'r50': 90.0}
# the knee of a load curve: the first level at this share of the best
# throughput; the queue time there is where the autoscaler should act. Not
# 95%: on this host one window's detector compute time moves by up to ~11%
# (the R50-FPN's 2.16-2.45 s a request in docs/results/load.json, same model
# and images), so 95% would place the knee by the host's noise
KNEE = 0.9
# perf_analyzer's windows of a few requests each are shorter than one round
# of the clients beyond this, and it reports no stable measurement there
PERF_ANALYZER_MAX = 16


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser('bench.sweep', __doc__)
    p.add_argument('--models', nargs='+', choices=sorted(WINDOWS),
                   default=sorted(WINDOWS))
    p.add_argument('--concurrency', type=int, nargs='+', default=LEVELS)
    p.add_argument('--seconds', type=float, default=None,
                   help='measurement window per level (default: demo 40, '
                   'r50 90)')
    p.add_argument('--warmup', type=float, default=None,
                   help='seconds of load before each window, at least; it '
                   'also waits until every client has had an answer '
                   '(default: a quarter of the window)')
    p.add_argument('--rounds', type=int, default=1,
                   help='measure every level this many times, levels in turn, '
                   'and keep the median round (default: %(default)s)')
    p.add_argument('--cpus', type=int, default=None,
                   help='export for this many CPUs (default: this host\'s)')
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'load')
    args = p.parse_args(argv)
    cli.at_least(p, 1, '--concurrency, --rounds and --cpus',
                 *args.concurrency, args.rounds, args.cpus or 1)
    if (args.seconds is not None and args.seconds <= 0) or (args.warmup or 0) < 0:
        p.error('--seconds must be more than 0 and --warmup 0 or more')
    return args


def requests(args, repository: Path, images: Dict[str, List[Path]]) -> Dict:
    from export.request import Export, Placement, Request
    from export.random_checkpoint import ensure
    ensure(paths.R50_CONFIG, paths.RANDOM_R50_CHECKPOINT)
    sources = {'demo': (paths.DEMO_CONFIG, paths.DEMO_CHECKPOINT),
               'r50': (paths.R50_CONFIG, paths.RANDOM_R50_CHECKPOINT)}
    return {name: Request(
        Export(config=sources[name][0], checkpoint=sources[name][1],
               images=images[name][:4], name=name, repository=repository),
        placement=Placement(cpus=args.cpus))
            for name in args.models}


def sweep_images(out: Path) -> Dict[str, List[Path]]:
    from synthetic.generate import write_split
    write_split(out / 'images', 'val', 16, seed=1)
    return {'demo': sorted((out / 'images' / 'val').glob('*.jpg')),
            'r50': sorted(paths.SAMPLES.glob('*.jpg'))}


def sweep(args: argparse.Namespace) -> int:
    from tools.stack import served
    images = sweep_images(args.out)
    report: Dict = {'levels': args.concurrency, 'models': {}}
    todo = requests(args, args.out / 'model_repository', images)
    with served(args.out / 'model_repository', todo.values()) as stack:
        for name in todo:
            report['models'][name] = sweep_model(args, stack, name, images[name])
    write(merged(report, args.out / 'load.json'), args.out)
    print((args.out / 'load.md').read_text())
    return 0


def sweep_model(args: argparse.Namespace, stack, name: str,
                images: List[Path]) -> Dict:
    """One model's levels (the median of the rounds), its knee and, for the
    demo detector, perf_analyzer's view."""
    from export.repository import composing

    from . import perf_analyzer
    from .load import drive
    seconds = args.seconds or WINDOWS[name]
    warmup = seconds / 4 if args.warmup is None else args.warmup
    payloads = [p.read_bytes() for p in images]
    runs: Dict[int, List[Dict]] = {c: [] for c in args.concurrency}
    for _ in range(args.rounds):
        for c in args.concurrency:
            runs[c].append(asyncio.run(drive(
                [stack.grpc_url], name, composing(name), payloads, c, warmup,
                seconds)).row())
            print(f'[load] {name} c={c}: ' + summary(runs[c][-1]),
                  file=sys.stderr, flush=True)
    levels = [median(runs[c]) for c in args.concurrency]
    entry = {'window_s': seconds, 'rounds': args.rounds, 'images': len(payloads),
             'capacity': json.loads((stack.exports[name] / 'metadata.json')
                                    .read_text())['capacity'],
             'levels': levels, 'knee': knee(levels)}
    if name == 'demo' and perf_analyzer.unavailable() is None:
        entry['perf_analyzer'] = perf_analyzer.ensemble(
            stack.grpc_url, name, payloads,
            [c for c in args.concurrency if c <= PERF_ANALYZER_MAX],
            args.out / 'perf_analyzer')
    return entry


def merged(report: Dict, previous: Path) -> Dict:
    """A sweep of some models replaces their entries in the last report
    and keeps the others'."""
    if not previous.exists():
        return report
    old = json.loads(previous.read_text())
    return {**report, 'models': {**old.get('models', {}), **report['models']}}


def knee(levels: List[Dict]) -> Dict:
    """The first level at ``KNEE`` of the best throughput, and the time a
    request waited in the detector's queue there, as the autoscaler's
    metric reads it (the detectors' queue microseconds per request:
    deploy/k8s/monitoring/prometheus-adapter-rules.yaml)."""
    best = max(row['throughput'] for row in levels)
    row = next(r for r in levels if r['throughput'] >= KNEE * best)
    (queue_ms,) = [m['queue_ms'] for name, m in row['models'].items()
                   if name.endswith('_detector')]
    return {'concurrency': row['concurrency'],
            'queue_us_per_request': round(1000 * queue_ms)}


def median(rows: List[Dict]) -> Dict:
    """The level's round with the median throughput, with every round's
    throughput beside it: the host's neighbours slow some windows down, and
    rounds taken in turn spread that over all levels."""
    ordered = sorted(rows, key=lambda row: row['throughput'])
    return {**ordered[(len(ordered) - 1) // 2],
            'rounds': [row['throughput'] for row in rows]}


def summary(row: Dict) -> str:
    return (f'{row["throughput"]} img/s, p50 {row["p50_ms"]} ms, p99 '
            f'{row["p99_ms"]} ms, {row["errors"]} errors, {row["rejected"]} '
            'rejected')


def markdown(report: Dict) -> str:
    lines = []
    for name, entry in report['models'].items():
        levels = entry['levels']
        best = max(row['throughput'] for row in levels)
        cap = entry['capacity']
        rounds = entry.get('rounds', 1)
        lines += [f'### {name} ({entry["images"]} images, {entry["window_s"]:g} s '
                  f'per level' + (f', median of {rounds} rounds' if rounds > 1
                                  else '') + f'; {cap["cpus"]} CPUs, detector '
                  f'{cap["detector_instances"]} x {cap["cpus"] // cap["detector_instances"]}'
                  f' threads, queue cap {cap["max_queue"]})', '',
                  '| c | images/s | of best | p50 ms | p95 ms | p99 ms | errors '
                  '| rejected | queue / compute ms (pre, detector, post) '
                  '| warm-up s |', '| --- ' * 10 + '|']
        for row in levels:
            split = ', '.join(f'{m["queue_ms"]} / {m["compute_ms"]}'
                              for m in row['models'].values())
            each = (' (' + ', '.join(map(str, row['rounds'])) + ')'
                    if len(row.get('rounds', [])) > 1 else '')
            lines.append(
                f'| {row["concurrency"]} | {row["throughput"]}{each} | '
                f'{row["throughput"] / best:.1%} | {row["p50_ms"]} | '
                f'{row["p95_ms"]} | {row["p99_ms"]} | {row["errors"]} | '
                f'{row["rejected"]} | {split} | {row.get("warmup_s", "")} |')
        for row in entry.get('perf_analyzer', []):
            lines.append(f'| perf_analyzer c={row["concurrency"]} | '
                         f'{row["throughput"]} | | {row["p50_ms"]} | '
                         f'{row["p95_ms"]} | {row["p99_ms"]} | | | | |')
        if 'knee' in entry:
            lines += ['', f'Knee ({KNEE:.0%} of the best): c='
                      f'{entry["knee"]["concurrency"]}, '
                      f'{entry["knee"]["queue_us_per_request"]} us queued per '
                      'request at the detector: the autoscaler\'s target.']
        lines.append('')
    return '\n'.join(lines)


def write(report: Dict, out: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    report = write_report(out / 'load.json', report, markdown)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, entry in report['models'].items():
        cs = [row['concurrency'] for row in entry['levels']]
        best = max(row['throughput'] for row in entry['levels'])
        left.plot(cs, [row['throughput'] / best for row in entry['levels']],
                  marker='o', label=f'{name} (best {best:g} img/s)')
        right.plot(cs, [row['p99_ms'] / 1000 for row in entry['levels']],
                   marker='o', label=name)
    for axis in (left, right):
        axis.set_xscale('log', base=2)
        axis.set_xlabel('concurrent clients')
        axis.legend()
    left.axhline(0.95, color='grey', linestyle=':')
    left.set_ylabel('throughput / best level')
    left.set_ylim(0, 1.1)
    right.set_yscale('log')
    right.set_ylabel('p99 latency, s')
    fig.tight_layout()
    fig.savefig(out / 'load.png', dpi=100)
    plt.close(fig)


main = cli.entry('load', parse_args, sweep)


if __name__ == '__main__':
    sys.exit(main())
