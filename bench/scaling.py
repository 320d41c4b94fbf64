"""python -m bench.scaling: does a second replica double the throughput?

The cluster stand-in (``tools.cluster``: S3 repository, replicas pinned to a
core each, nginx in front) with 1 replica, then with 2, in one run; the same
closed-loop load through nginx for both (``bench.load.drive``), at the same
concurrency. The model is exported once for one core (``--cpus 1``) and
uploaded to each cluster's store. With 2 replicas the clients also go
straight to the replicas (half each), which shows what the balancer costs.
Writes ``scaling.json`` and ``scaling.md`` in ``--out``; the ratios are
2-replica throughput over 1-replica throughput.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from detection import paths

REPLICAS = (1, 2)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='python -m bench.scaling', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('-c', '--concurrency', type=int, default=8)
    p.add_argument('--seconds', type=float, default=60.0,
                   help='measurement window per cluster (default: %(default)s)')
    p.add_argument('--warmup', type=float, default=15.0)
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'scaling')
    return p.parse_args(argv)


def export_once(out: Path) -> Path:
    """The demo detector for one core, in a local repository to upload."""
    from export.pipeline import Request, ensure
    from synthetic.generate import write_split
    write_split(out / 'images', 'val', 8, seed=1)
    images = sorted((out / 'images' / 'val').glob('*.jpg'))
    ensure(Request(config=paths.DEMO_CONFIG, checkpoint=paths.DEMO_CHECKPOINT,
                   images=images[:2], name='demo',
                   repository=out / 'model_repository', cpus=1))
    return out / 'model_repository'


def measure(repository: Path, replicas: int, args, payloads) -> list:
    """Through nginx; with more than one replica, also straight to each
    replica at once (the clients split evenly), which shows what the
    balancer costs."""
    from export.store import S3Store
    from tools.cluster import cluster

    from .load import drive
    with cluster(args.out / f'cluster-{replicas}', replicas,
                 publish=lambda url: S3Store(url).publish(repository, ['demo'])
                 ) as running:
        cores = [r.core for r in running.replicas]
        rows = [{'replicas': replicas, 'cores': cores, 'path': 'nginx',
                 **asyncio.run(drive(running.grpc_url, 'demo', [], payloads,
                                     args.concurrency, args.warmup,
                                     args.seconds)).row()}]
        if replicas > 1:
            async def direct():
                return await asyncio.gather(*(drive(
                    f'{r.host}:{r.grpc_port}', 'demo', [], payloads,
                    args.concurrency // replicas, args.warmup, args.seconds)
                    for r in running.replicas))
            rows.append({'replicas': replicas, 'cores': cores, 'path': 'direct',
                         **combined(asyncio.run(direct()), args).row()})
    for row in rows:
        row.pop('models')
    return rows


def combined(levels, args):
    """The replicas' levels as one: every latency, every count."""
    from .load import Level
    return Level(args.concurrency, args.seconds,
                 latencies=[t for level in levels for t in level.latencies],
                 errors=sum(level.errors for level in levels),
                 rejected=sum(level.rejected for level in levels),
                 retried=sum(level.retried for level in levels))


def main(argv=None) -> int:
    args = parse_args(argv)
    from export.__main__ import setup_logging
    from export.errors import ExportError
    from tools.cluster import ClusterError
    setup_logging(verbose=False)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        repository = export_once(args.out)
        payloads = [p.read_bytes() for p in
                    sorted((args.out / 'images' / 'val').glob('*.jpg'))]
        rows = []
        for n in REPLICAS:
            for row in measure(repository, n, args, payloads):
                rows.append(row)
                print(f'[scaling] {n} replica(s), {row["path"]}: '
                      f'{row["throughput"]} img/s, p50 {row["p50_ms"]} ms, '
                      f'{row["errors"]} errors', file=sys.stderr, flush=True)
    except (ExportError, ClusterError) as exc:
        print(f'scaling: error: {exc}', file=sys.stderr)
        return 1
    one = next(r for r in rows if r['replicas'] == 1)
    report = {'model': 'demo', 'concurrency': args.concurrency,
              'window_s': args.seconds, 'levels': rows,
              'ratio': {row['path']: round(row['throughput'] / one['throughput'], 3)
                        for row in rows if row['replicas'] == 2}}
    write(report, args.out)
    print((args.out / 'scaling.md').read_text())
    return 0


def write(report: dict, out: Path) -> None:
    from triton_frcnn.files import write_atomic
    lines = ['| replicas (1 core each) | clients reach them | images/s | p50 ms '
             '| p99 ms | errors | rejected |', '| --- ' * 7 + '|']
    for row in report['levels']:
        lines.append(f'| {row["replicas"]} (cores {row["cores"]}) | '
                     f'{"through nginx" if row["path"] == "nginx" else "directly"}'
                     f' | {row["throughput"]} | {row["p50_ms"]} | {row["p99_ms"]} '
                     f'| {row["errors"]} | {row["rejected"]} |')
    lines += ['', '2 replicas / 1 replica: ' + ', '.join(
        f'**{ratio}x** {"through nginx" if path == "nginx" else "directly"}'
        for path, ratio in report['ratio'].items()) + f' (demo detector, '
        f'c={report["concurrency"]} in all, {report["window_s"]:g} s windows)', '']
    write_atomic(out / 'scaling.json', json.dumps(report, indent=2) + '\n')
    write_atomic(out / 'scaling.md', '\n'.join(lines))


if __name__ == '__main__':
    sys.exit(main())
