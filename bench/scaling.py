"""python -m bench.scaling: does a second replica double the throughput?

The cluster stand-in (``tools.cluster``: S3 repository, replicas pinned to a
core each, nginx in front) with 1 replica, then with 2, in one run; the same
closed-loop load through nginx for both (``bench.load.drive``), at the same
concurrency. The model is exported once for one core (``--cpus 1``) and
uploaded to each cluster's store. 1 replica is measured with the client,
nginx and S3 on the other core and again on the replica's own; with 2
replicas the clients also go straight to the replicas (half each), which
shows what the balancer costs. Writes ``scaling.json`` and ``scaling.md`` in
``--out``; the ratios are each 2-replica row over each 1-replica row.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

from detection import paths
from ground import cli
from ground.results import write_report

REPLICAS = (1, 2)
# how often each replica looks for a new version in the store: as a
# deployment would, not the tests' 2 s (each look costs the replica's core
# and the S3 server a few ms)
POLL = 30.0


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser('bench.scaling', __doc__)
    p.add_argument('-c', '--concurrency', type=int, default=8)
    p.add_argument('--seconds', type=float, default=60.0,
                   help='measurement window per cluster (default: %(default)s)')
    p.add_argument('--warmup', type=float, default=15.0)
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'scaling')
    args = p.parse_args(argv)
    cli.at_least(p, 1, '--concurrency', args.concurrency)
    if args.seconds <= 0 or args.warmup < 0:
        p.error('--seconds must be more than 0 and --warmup 0 or more')
    return args


def export_once(out: Path) -> Path:
    """The demo detector for one core, in a local repository to upload."""
    from export.pipeline import ensure
    from export.request import Export, Placement, Request
    from synthetic.generate import write_split
    write_split(out / 'images', 'val', 8, seed=1)
    images = sorted((out / 'images' / 'val').glob('*.jpg'))
    ensure(Request(
        Export(config=paths.DEMO_CONFIG, checkpoint=paths.DEMO_CHECKPOINT,
               images=images[:2], name='demo',
               repository=out / 'model_repository'),
        placement=Placement(cpus=1)))
    return out / 'model_repository'


def measure(repository: Path, replicas: int, args, payloads) -> list:
    """Rows for one cluster: through nginx; with one replica also with the
    client, nginx and the S3 server moved onto the replica's core (with two
    replicas every core is a replica's, so that is where they run there
    too: the two 1-replica rows bound the ratio from both sides); with more
    than one, also straight to the replicas (the clients split evenly),
    which shows what the balancer costs."""
    from export.store import S3Store
    from tools.cluster import cluster

    from .load import drive
    with cluster(args.out / f'cluster-{replicas}', replicas, poll=POLL,
                 publish=lambda url: S3Store(url).publish(repository, ['demo'])
                 ) as running:
        cores = [r.core for r in running.replicas]
        urls = {'nginx': [running.grpc_url], 'shared': [running.grpc_url],
                'direct': [f'{r.host}:{r.grpc_port}' for r in running.replicas]}
        paths = ['nginx', 'shared'] if replicas == 1 else ['nginx', 'direct']
        rows = []
        for path in paths:
            helping = helpers(running)
            with confined(helping, cores if path == 'shared' else None):
                before = cpu_seconds(helping)
                started = time.perf_counter()
                level = asyncio.run(drive(urls[path], 'demo',
                                          [], payloads, args.concurrency,
                                          args.warmup, args.seconds))
                used = cpu_seconds(helping) - before
            row = level.row()
            row.pop('models')
            rows.append({'replicas': replicas, 'cores': cores, 'path': path,
                         'helpers_cores': round(
                             used / (time.perf_counter() - started), 3), **row})
    return rows


def helpers(running) -> list:
    """This process (the clients), nginx and the S3 server: everything the
    cluster runs besides its replicas."""
    import psutil
    replicas = {p.pid for r in running.replicas
                for p in [r.process, *r.descendants()]}
    me = psutil.Process()
    return [me] + [p for p in me.children(recursive=True)
                   if p.pid not in replicas]


@contextmanager
def confined(processes: list, cores) -> Iterator[None]:
    """Every thread of ``processes`` on ``cores`` (None: as they are) for
    the block; then every thread, new ones too, back on its process's CPUs."""
    import psutil
    saved = {}
    try:
        for process in processes if cores else []:
            with suppress(psutil.NoSuchProcess):
                saved[process] = os.sched_getaffinity(process.pid)
                for thread in process.threads():
                    with suppress(OSError):
                        os.sched_setaffinity(thread.id, cores)
        yield
    finally:
        for process, affinity in saved.items():
            with suppress(psutil.NoSuchProcess):
                for thread in process.threads():
                    with suppress(OSError):
                        os.sched_setaffinity(thread.id, affinity)


def cpu_seconds(processes: list) -> float:
    import psutil
    total = 0.0
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def scaling(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
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
    write_report(args.out / 'scaling.json', {
        'model': 'demo', 'concurrency': args.concurrency,
        'window_s': args.seconds, 'levels': rows,
        'ratio': {f'{two["path"]}/{one["path"]}':
                  round(two['throughput'] / one['throughput'], 3)
                  for two in rows if two['replicas'] == 2
                  for one in rows if one['replicas'] == 1}}, markdown)
    print((args.out / 'scaling.md').read_text())
    return 0


# where the client, nginx and the S3 server run, by row
HELPERS = {(1, 'nginx'): 'the other core', (1, 'shared'): "the replica's core",
           (2, 'nginx'): "the replicas' cores", (2, 'direct'): "the replicas' cores"}


def markdown(report: dict) -> str:
    lines = ['| replicas (1 core each) | clients reach them | client, nginx, S3 '
             'run on | their CPU, cores | images/s | p50 ms | p99 ms | errors '
             '| rejected |', '| --- ' * 9 + '|']
    for row in report['levels']:
        lines.append(f'| {row["replicas"]} (cores {row["cores"]}) | '
                     f'{"directly" if row["path"] == "direct" else "through nginx"}'
                     f' | {HELPERS[row["replicas"], row["path"]]} | '
                     f'{row["helpers_cores"]} | {row["throughput"]} | '
                     f'{row["p50_ms"]} | {row["p99_ms"]} | {row["errors"]} | '
                     f'{row["rejected"]} |')
    ratio = report['ratio']
    lines += ['', f'2 replicas / 1 replica: **{ratio["nginx/nginx"]}x** through '
              f'nginx, **{ratio["direct/nginx"]}x** directly, against 1 replica '
              f'whose client, nginx and S3 had the other core (the lower bound: '
              f'with 2 replicas they share the replicas\' cores); against 1 '
              f'replica sharing its core with them, as with 2: '
              f'{ratio["nginx/shared"]}x, {ratio["direct/shared"]}x (demo '
              f'detector, c={report["concurrency"]} in all, '
              f'{report["window_s"]:g} s windows)', '']
    return '\n'.join(lines)


main = cli.entry('scaling', parse_args, scaling)


if __name__ == '__main__':
    sys.exit(main())
