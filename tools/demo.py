"""python -m tools.demo: export (unless up to date), serve, detect, stop.

What ``make demo`` runs: the whole product once, offline, on the given
images, leaving annotated copies in the results folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from triton_frcnn.files import given_images, not_found

from detection import paths
from ground import cli


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m tools.demo', description=__doc__)
    p.add_argument('-c', '--config', type=Path, required=True)
    p.add_argument('-w', '--checkpoint', type=Path, required=True)
    p.add_argument('-m', '--name', default='faster_rcnn')
    p.add_argument('-r', '--repository', type=Path, default=paths.MODEL_REPOSITORY)
    p.add_argument('--images', type=Path, default=paths.SAMPLES)
    p.add_argument('--out', type=Path, default=paths.RESULTS)
    p.add_argument('--score-thr', type=float, default=0.5,
                   help='draw boxes above this score (default: %(default)s)')
    p.add_argument('--limit', type=int, default=0,
                   help='first N images of --images only (0: all)')
    args = p.parse_args(argv)
    if problem := not_found([args.config, args.checkpoint]):
        p.error(problem)
    try:
        images = given_images([args.images])
    except ValueError as exc:
        p.error(str(exc))
    cli.at_least(p, 0, '--limit', args.limit)

    images = images[:args.limit] if args.limit else images
    return cli.run('demo', lambda: demo(args, images))


def demo(args: argparse.Namespace, images: list) -> int:
    from export.request import Export, Request
    from triton_frcnn.client.cli import main as detect

    from .stack import served
    request = Request(
        Export(config=args.config, checkpoint=args.checkpoint,
               images=images[:4], name=args.name, repository=args.repository))
    with served(args.repository, [request]) as stack:
        print(f'[demo] Triton on {stack.grpc_url} (log '
              f'{stack.server.log_file})', flush=True)
        code = detect([*map(str, images), '-u', stack.grpc_url,
                       '-m', args.name, '--out', str(args.out),
                       '--score-thr', str(args.score_thr)])
    if code == 0:
        print(f'[demo] annotated images are in {args.out.resolve()}/')
    return code


if __name__ == '__main__':
    sys.exit(main())
