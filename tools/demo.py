"""python -m serve.demo: export (unless up to date), serve, detect, stop.

What ``make demo`` runs: the whole product once, offline, on the bundled
sample images, leaving annotated copies in the results folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .server import ServerError, TritonServer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m serve.demo', description=__doc__)
    p.add_argument('-c', '--config', type=Path, required=True)
    p.add_argument('-w', '--checkpoint', type=Path, required=True)
    p.add_argument('-m', '--name', default='faster_rcnn')
    p.add_argument('-r', '--repository', type=Path, default=Path('model_repository'))
    p.add_argument('--images', type=Path, default=Path('assets/samples'))
    p.add_argument('--out', type=Path, default=Path('results'))
    p.add_argument('--score-thr', type=float, default=0.5,
                   help='draw boxes above this score (default: %(default)s)')
    p.add_argument('--limit', type=int, default=0,
                   help='first N images of --images only (0: all)')
    args = p.parse_args(argv)

    from client.__main__ import main as client_main
    from detection.images import image_files
    from export.__main__ import setup_logging
    from export.errors import ExportError
    from export.pipeline import Request, ensure
    setup_logging(verbose=False)
    images = image_files([args.images])
    images = images[:args.limit] if args.limit else images
    try:
        ensure(Request(config=args.config, checkpoint=args.checkpoint,
                       images=images[:4], name=args.name,
                       repository=args.repository))
    except ExportError as exc:
        print(f'demo: error: {exc}', file=sys.stderr)
        return 1

    server = TritonServer.on_free_ports(args.repository)
    try:
        print(f'[demo] starting Triton on 127.0.0.1:{server.grpc_port} (log '
              f'{server.workdir / "server.log"})', flush=True)
        server.start()
        code = client_main([*map(str, images), '-u',
                            f'127.0.0.1:{server.grpc_port}',
                            '-m', args.name, '--out', str(args.out),
                            '--score-thr', str(args.score_thr)])
    except ServerError as exc:
        print(f'demo: error: {exc}', file=sys.stderr)
        return 1
    finally:
        server.stop()
    if code == 0:
        print(f'[demo] annotated images are in {args.out.resolve()}/')
    return code


if __name__ == '__main__':
    sys.exit(main())
