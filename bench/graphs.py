"""python -m bench.graphs: two exported versions of one detector, side by side.

For a change to the exported graph (a rewrite, an opset): both version
folders' graphs run in one process on the same images, in turn, image by
image, ``--rounds`` times, so the host's slow spells fall on both alike; it
reports each one's median time an image, their ratio, and how many of the
first's top-100 detections the second reproduces (parity's tolerance).

    python -m bench.graphs OLD_VERSION_DIR NEW_VERSION_DIR --out results/graphs
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from detection import paths
from ground import cli
from ground.results import write_report


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser('bench.graphs', __doc__)
    p.add_argument('versions', nargs=2, type=Path, metavar='VERSION_DIR',
                   help='two exported version folders (model.onnx, metadata.json)')
    p.add_argument('--images', nargs='+', type=Path, default=[paths.SAMPLES])
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'graphs')
    args = p.parse_args(argv)
    cli.at_least(p, 1, '--rounds', args.rounds)
    missing = [str(v) for v in args.versions if not (v / 'metadata.json').is_file()]
    if missing:
        p.error(f'not an exported version folder: {", ".join(missing)}')
    args.images = cli.images(p, args.images)
    return args


def compare(versions: List[Path], images: List[Path], rounds: int) -> Dict:
    from detection.runtime import for_version
    from export.parity import match
    runners = [for_version(v) for v in versions]
    payloads = [p.read_bytes() for p in images]
    results = [[run(data) for data in payloads] for run in runners]  # warm-up
    times: List[List[float]] = [[], []]
    for _ in range(rounds):
        for data in payloads:
            for k, run in enumerate(runners):
                start = time.perf_counter()
                run(data)
                times[k].append(time.perf_counter() - start)
    matches = [match(a, b, p.name) for a, b, p in zip(*results, images)]
    ms = [float(np.median(t)) * 1000 for t in times]
    return {
        'versions': [str(v) for v in versions],
        'images': [p.name for p in images], 'rounds': rounds,
        'median_ms': [round(m, 1) for m in ms],
        'second_over_first_time': round(ms[1] / ms[0], 3),
        'parity': [{'image': m.name, 'matched': m.matched,
                    'reference': m.reference} for m in matches],
    }


def graphs(args: argparse.Namespace) -> int:
    report = compare(args.versions, args.images, args.rounds)
    write_report(args.out / 'graphs.json', report)
    print(json.dumps(report, indent=2))
    return 0


main = cli.entry('graphs', parse_args, graphs)


if __name__ == '__main__':
    sys.exit(main())
