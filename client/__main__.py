"""python -m client: send images to the Triton detector, print or draw boxes.

Flags follow Triton's client examples (-u/--url, -m/--model, -i/--protocol,
-v/--verbose). Each file gets its own line; a file that fails is reported and
the rest go on. Exit status: 0 all succeeded, 1 some file failed, 2 the server
could not be used.
"""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from detection.images import image_files


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='python -m client', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('images', nargs='+', type=Path, metavar='IMAGE_OR_DIR')
    p.add_argument('-u', '--url', default=None,
                   help='server URL (default: localhost:8001 for gRPC, '
                   'localhost:8000 for HTTP)')
    p.add_argument('-i', '--protocol', choices=('grpc', 'http'), default='grpc')
    p.add_argument('-m', '--model', default='faster_rcnn',
                   help='ensemble name (default: %(default)s)')
    p.add_argument('-v', '--verbose', action='store_true')
    p.add_argument('--score-thr', type=float, default=0.3,
                   help='draw and report boxes above this score '
                   '(default: %(default)s)')
    p.add_argument('--concurrency', type=int, default=1,
                   help='requests in flight (default: %(default)s)')
    p.add_argument('--timeout', type=float, default=60.0,
                   help='seconds per request (default: %(default)s)')
    p.add_argument('--wait', type=float, default=10.0,
                   help='seconds to wait for the server and model to be ready')
    p.add_argument('--retries', type=int, default=2,
                   help='retries per image when the server is unreachable or '
                   'overloaded, with exponential backoff (default: %(default)s)')
    p.add_argument('--out', type=Path, default=None,
                   help='write <stem>.jpg and <stem>.json per image and '
                   'detections.json here; images done in an earlier run '
                   'are skipped')
    args = p.parse_args(argv)
    if args.concurrency < 1:
        p.error('--concurrency must be 1 or more')
    return args


def describe(dets, score_thr: float, listed: int = 5) -> str:
    shown = dets[dets.scores > score_thr]
    items = [f'{n} {s:.2f}' for n, s in zip(shown.names[:listed],
                                             shown.scores[:listed])]
    more = ', ...' if len(shown) > listed else ''
    return (f'{len(shown)} detections above {score_thr:g}'
            + (f': {", ".join(items)}{more}' if items else ''))


def main(argv=None) -> int:
    args = parse_args(argv)
    from tqdm import tqdm

    from .detector import ServerUnavailable, TritonDetector
    from .output import ResultFolder

    files = image_files(args.images)
    if not files:
        print('client: error: no images found in the given paths',
              file=sys.stderr)
        return 1
    out = ResultFolder(args.out) if args.out is not None else None
    todo = [(i, p) for i, p in enumerate(files) if out is None or not out.done(p)]
    if len(todo) < len(files):
        print(f'skipping {len(files) - len(todo)} images already done in {args.out}')
    try:
        detector = TritonDetector(args.url, args.model, args.protocol,
                                  timeout=args.timeout, wait=args.wait,
                                  retries=args.retries, verbose=args.verbose)
    except ServerUnavailable as exc:
        print(f'client: error: {exc}', file=sys.stderr)
        return 2

    def run(job):
        image_id, path = job
        try:
            data = path.read_bytes()
            dets = detector.infer_bytes(data)
            if out is not None:
                out.save(path, image_id, data, dets, detector, args.score_thr)
            return path, dets, None
        except Exception as exc:  # reported per file; the run goes on
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return path, None, message

    failed = 0
    with detector, ThreadPoolExecutor(args.concurrency) as pool, tqdm(
            total=len(todo), unit='img', disable=len(todo) < 2,
            file=sys.stderr) as bar:
        for path, dets, error in pool.map(run, todo):
            bar.update()
            if error is not None:
                failed += 1
                tqdm.write(f'{path}: error: {error}', file=sys.stderr)
            else:
                tqdm.write(f'{path}: {describe(dets, args.score_thr)}')
    if out is not None:
        written = out.collect(files)
        print(f'{args.out}: {written} of {len(files)} images annotated; '
              f'detections.json updated')
    if failed:
        print(f'client: {failed} of {len(todo)} images failed',
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
