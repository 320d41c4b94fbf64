"""python -m serve.demo: export (unless up to date), serve, detect, stop.

What ``make demo`` runs: the whole product once, offline, on the bundled
sample images, leaving annotated copies in the results folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .server import ServerError, TritonServer, free_port


def up_to_date(repository: Path, name: str, checkpoint: Path,
               config: Path) -> bool:
    """True when the newest detector version came from this checkpoint and
    config, so the demo need not export again."""
    from export.checkpoint import sha256
    from export.repository import versions
    model_dir = repository / f'{name}_detector'
    found = versions(model_dir)
    if not found or not (repository / name / 'config.pbtxt').exists():
        return False
    meta_file = model_dir / str(found[-1]) / 'metadata.json'
    if not meta_file.exists():
        return False
    meta = json.loads(meta_file.read_text())
    return (meta.get('checkpoint_sha256') == sha256(checkpoint)
            and meta.get('config') == str(config))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m serve.demo', description=__doc__)
    p.add_argument('-c', '--config', type=Path, required=True)
    p.add_argument('-w', '--checkpoint', type=Path, required=True)
    p.add_argument('-m', '--name', default='faster_rcnn')
    p.add_argument('-r', '--repository', type=Path, default=Path('model_repository'))
    p.add_argument('--images', type=Path, default=Path('assets/samples'))
    p.add_argument('--out', type=Path, default=Path('results'))
    args = p.parse_args(argv)

    from export.__main__ import main as export_main
    if up_to_date(args.repository, args.name, args.checkpoint, args.config):
        print(f'[demo] {args.repository}/{args.name}_detector is up to date '
              f'with {args.checkpoint}; not exporting again')
    elif export_main(['-c', str(args.config), '-w', str(args.checkpoint),
                      '-m', args.name, '-r', str(args.repository),
                      '--images', str(args.images)]) != 0:
        return 1

    from client.__main__ import main as client_main
    grpc_port = free_port()
    server = TritonServer(args.repository, http_port=free_port(),
                          grpc_port=grpc_port, metrics_port=free_port())
    try:
        print(f'[demo] starting Triton on 127.0.0.1:{grpc_port} (log '
              f'{server.workdir / "server.log"})', flush=True)
        server.start()
        code = client_main([str(args.images), '-u', f'127.0.0.1:{grpc_port}',
                            '-m', args.name, '--out', str(args.out)])
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
