"""python -m serve: run Triton on a model repository until Ctrl-C or SIGTERM."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from detection import paths
from export.store import location
from ground.engine import ENVIRONMENT, Engine, EngineError
from ground.cli import error
from ground.process import interrupt_on_sigterm

from .errors import ServerError
from .rollout import Watcher
from .server import TritonServer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m serve', description=__doc__)
    p.add_argument('-r', '--repository', type=location,
                   default=paths.MODEL_REPOSITORY,
                   help='a folder, or s3://[host:port/]bucket/prefix (AWS '
                   'credentials from the environment)')
    p.add_argument('--host', default='127.0.0.1',
                   help='address to bind (default: loopback only)')
    p.add_argument('--http-port', type=int, default=8000)
    p.add_argument('--grpc-port', type=int, default=8001)
    p.add_argument('--metrics-port', type=int, default=8002)
    p.add_argument('--workdir', type=Path, default=paths.TRITON_WORKDIR,
                   help='backends and log (one per server on a machine)')
    p.add_argument('--log-file', type=Path, default=None,
                   help='server log (default: WORKDIR/server.log)')
    p.add_argument('--model-config-name', default='', metavar='NAME',
                   help='serve each model\'s configs/NAME.pbtxt where it has '
                   'one, config.pbtxt elsewhere (the export writes the GPU '
                   'placement as "gpu"; default: config.pbtxt everywhere)')
    p.add_argument('--backend-directory', type=Path, metavar='DIR',
                   default=os.environ.get(ENVIRONMENT) or None,
                   help='serve the detectors with the native backends in DIR '
                   '(NAME/libtriton_NAME.so, e.g. a copy of NGC\'s '
                   '/opt/tritonserver/backends; default: $%s, else the '
                   'Python-based stand-in)' % ENVIRONMENT)
    p.add_argument('--poll', type=float, default=0, metavar='SECONDS',
                   help='check the repository this often and roll newly '
                   'published versions in with no failed request (0: never)')
    args = p.parse_args(argv)
    try:
        engine = Engine.of(args.backend_directory)
    except EngineError as exc:
        p.error(str(exc))
    server = TritonServer(args.repository, host=args.host,
                          http_port=args.http_port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, workdir=args.workdir,
                          log_file=args.log_file,
                          config_name=args.model_config_name, engine=engine)
    interrupt_on_sigterm()  # not cli.run: Ctrl-C here is the way to stop
    try:
        server.start()
        for line in server.report:
            print(f'serve: warning: {line}', file=sys.stderr)
        print(engine.line(), flush=True)
        print(f'serving {args.repository} on {args.host}: gRPC {args.grpc_port}, '
              f'HTTP {args.http_port}, metrics {args.metrics_port}; '
              f'log {server.log_file}; Ctrl-C stops', flush=True)
        if args.poll > 0:
            Watcher(server, args.poll, lambda line: print(
                f'serve: {line}', file=sys.stderr, flush=True)).start()
        server.process.wait()
        return error('serve', f'tritonserver exited ({server.process.returncode}); '
                     f'see {server.log_file}')
    except ServerError as exc:
        return error('serve', exc)
    except KeyboardInterrupt:
        code = server.stop()
        print(f'serve: stopped (exit code {code})')
        return 0


if __name__ == '__main__':
    sys.exit(main())
