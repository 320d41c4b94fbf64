"""python -m bench.direct: what a caller who skips the ensemble costs the
server, measured on the R50-FPN fp32 export (docs/direct-requests.md).

On each engine (the stand-in, and the native backends of
TRITON_BACKEND_DIR where given), one server: a photo through the ensemble
and the detector's largest canvas sent directly, for reference; then
tensors of sides far past that canvas sent to the detector directly, one at
a time and eight at once. For each, the seconds it took and the server's
resident memory (with its Python stubs') after it, once settled.

Writes direct.json and direct.md.
"""
from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

import numpy as np

from detection import paths
from ground import cli
from ground.engine import Engine
from ground.process import resident_mib
from ground.results import title, write_report

from . import r50

SETTLE_S = 5  # jemalloc hands freed pages back within a second


def parse_args(argv=None):
    p = cli.parser('bench.direct', __doc__)
    r50.add_arguments(p)
    p.add_argument('--sides', type=int, nargs='+', default=[2000, 3000],
                   help='square tensors sent to the detector directly')
    p.add_argument('--burst', type=int, default=8)
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'direct.json')
    args = p.parse_args(argv)
    cli.at_least(p, 1, '--sides and --burst', args.burst, *args.sides)
    return args


def detector_call(client, name: str, side_h: int, side_w: int):
    import tritonclient.grpc as grpcclient
    inputs = [grpcclient.InferInput('input', [1, 3, side_h, side_w], 'FP32'),
              grpcclient.InferInput('img_shape', [1, 2], 'FP32')]
    inputs[0].set_data_from_numpy(np.zeros((1, 3, side_h, side_w), np.float32))
    inputs[1].set_data_from_numpy(np.array([[side_h, side_w]], np.float32))
    return client.infer(name, inputs)


def on_engine(request, engine: Engine, largest, args) -> List[Dict]:
    """The rows of one engine's server."""
    import tritonclient.grpc as grpcclient
    from tools.stack import served
    rows: List[Dict] = []
    with served(request.export.repository, engine=engine) as stack:
        server = stack.server.process.pid
        client = grpcclient.InferenceServerClient(stack.grpc_url)
        name = request.detector_name

        def row(what: str, call, count: int = 1) -> None:
            start = time.perf_counter()
            with ThreadPoolExecutor(count) as pool:
                outcomes = list(pool.map(lambda _: call(), range(count)))
            seconds = time.perf_counter() - start
            time.sleep(SETTLE_S)
            rows.append({'engine': engine.name, 'request': what,
                         'seconds': round(seconds, 2),
                         'answered': sum(o is not None for o in outcomes),
                         'rss_mib_after': resident_mib(server)})

        with stack.detector(request.served_name) as det:
            photo = (paths.SAMPLES / 'chelsea.jpg').read_bytes()
            det.infer_bytes(photo)
            rows.append({'engine': engine.name, 'request': 'started',
                         'rss_mib_after': resident_mib(server)})
            row('a photo through the ensemble', lambda: det.infer_bytes(photo))
        row(f'detector directly, its largest canvas {largest[0]}x{largest[1]}',
            lambda: detector_call(client, name, *largest))
        for side in args.sides:
            row(f'detector directly, {side}x{side}',
                lambda side=side: detector_call(client, name, side, side))
        side = max(args.sides)
        row(f'detector directly, {args.burst} of {side}x{side} at once',
            lambda: detector_call(client, name, side, side), args.burst)
    return rows


def measure(args) -> int:
    from detection.preprocess import Preprocessing
    request, version = r50.exported(args, sorted(paths.SAMPLES.glob('*.jpg')))
    meta = json.loads((version / 'metadata.json').read_text())
    largest = Preprocessing.from_dict(meta['preprocessing']).largest
    engines = [Engine()] + [e for e in [Engine.from_environment()]
                            if e.name == 'native']
    rows = [r for engine in engines for r in on_engine(request, engine,
                                                       largest, args)]
    report = {'model': args.config.name, 'largest_canvas': list(largest),
              'settle_s': SETTLE_S,
              'engines': {e.name: e.describe() for e in engines},
              'rows': rows}
    print(render(write_report(args.out, report, render)), end='')
    return 0


def render(report: Dict) -> str:
    lines = [title(report, "A direct caller's cost", report['model']), '',
             '| engine | request | seconds | answered | RSS after (MiB) |',
             '| --- | --- | --- | --- | --- |']
    lines += [f"| {r['engine']} | {r['request']} | {r.get('seconds', '')} | "
              f"{r.get('answered', '')} | {r['rss_mib_after']} |"
              for r in report['rows']]
    return '\n'.join(lines) + '\n'


main = cli.entry('bench.direct', parse_args, measure)


if __name__ == '__main__':
    sys.exit(main())
