"""python -m tools.cluster (``make cluster``): the process layout of a
Kubernetes deployment, run for real on one machine.

An S3-compatible server (moto) holds the model repository; N replicas of
``python -m serve`` read it through tritonserver's own S3 support, each
pinned to its own CPU core (taskset) and, where root allows, in its own
network namespace, as pods would be; nginx balances gRPC and HTTP over them
with passive health checks (a replica that fails is skipped for a while, and
a request it refused or dropped is passed to the next). Clients use nginx's
ports. Replicas roll newly published versions in (``--poll``). Ctrl-C stops
everything.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from triton_frcnn.files import not_found

from detection import paths
from ground import cli

from . import cluster
from .nginx import TlsFront
from .s3 import CREDENTIALS


def main(argv=None) -> int:
    p = cli.parser('tools.cluster', __doc__)
    p.add_argument('--replicas', type=int, default=2)
    p.add_argument('-c', '--config', type=Path, default=paths.DEMO_CONFIG)
    p.add_argument('-w', '--checkpoint', type=Path, default=paths.DEMO_CHECKPOINT)
    p.add_argument('-m', '--name', default='faster_rcnn')
    p.add_argument('--workdir', type=Path, default=paths.ROOT / '.cluster')
    p.add_argument('--tls-certificate', type=Path, metavar='PEM',
                   help='nginx serves TLS only, with this certificate')
    p.add_argument('--tls-key', type=Path, metavar='PEM')
    p.add_argument('--tls-client-ca', type=Path, metavar='PEM',
                   help='and requires client certificates signed by this CA')
    args = p.parse_args(argv)
    tls_files = [args.tls_certificate, args.tls_key, args.tls_client_ca]
    if problem := not_found(tls_files):
        p.error(problem)
    if any(tls_files) and not (args.tls_certificate and args.tls_key):
        p.error('TLS needs --tls-certificate and --tls-key')
    tls = TlsFront(*tls_files) if args.tls_certificate else None
    images = sorted((paths.ROOT / 'data/synthetic/val').glob('*.jpg'))[:4] or \
        sorted(paths.SAMPLES.glob('*.jpg'))

    def publish(repository: str) -> None:
        from export.pipeline import run
        from export.request import Export, Placement, Request
        run(Request(
            Export(config=args.config, checkpoint=args.checkpoint,
                   images=images, name=args.name, repository=repository),
            placement=Placement(cpus=1)))  # each replica has one core
    return cli.run('cluster', lambda: run_until_stopped(args, publish, tls))


def run_until_stopped(args: argparse.Namespace, publish, tls) -> int:
    try:
        with cluster(args.workdir, args.replicas, publish=publish,
                     tls=tls) as c:
            print(f'[cluster] S3 repository {c.repository} (credentials: '
                  f'{" ".join(f"{k}={v}" for k, v in CREDENTIALS.items())})')
            for r in c.replicas:
                print(f'[cluster] replica {r.index}: {r.host} gRPC {r.grpc_port} '
                      f'HTTP {r.http_port} on core {r.core}'
                      + (f', namespace {r.namespace}' if r.namespace else ''))
            print(f'[cluster] nginx: gRPC {c.grpc_url}, HTTP {c.http_url}'
                  f'{" (TLS only)" if tls else ""}; try: python -m client -u '
                  f'{c.grpc_url} -m {args.name}{" --ssl" if tls else ""} '
                  'IMAGE; Ctrl-C stops', flush=True)
            while all(r.process.poll() is None for r in c.replicas):
                time.sleep(1)
            return cli.error('cluster', 'a replica exited; see its serve.log '
                             f'under {args.workdir}')
    except KeyboardInterrupt:
        print('[cluster] stopped')
        return 0


if __name__ == '__main__':
    sys.exit(main())
