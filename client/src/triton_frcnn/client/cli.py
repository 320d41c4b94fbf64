"""frcnn-detect: send images to the Triton detector, print or draw boxes.

Flags follow Triton's client examples (-u/--url, -m/--model, -x/--model-version,
-i/--protocol, -v/--verbose). Each file gets its own line; a file that fails
is reported and the rest go on. Exit status: 0 all succeeded, 1 some file
failed, 2 the server could not be used.
"""
from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional

from ..files import image_files, not_found
from ..wire import Detections
from .protocol import Tls

PROG = 'frcnn-detect'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('images', nargs='+', type=Path, metavar='IMAGE_OR_DIR')
    p.add_argument('-u', '--url', default=None,
                   help='server URL (default: localhost:8001 for gRPC, '
                   'localhost:8000 for HTTP)')
    p.add_argument('-i', '--protocol', choices=('grpc', 'http'), default='grpc')
    p.add_argument('-m', '--model', default='faster_rcnn',
                   help='ensemble name (default: %(default)s)')
    p.add_argument('-x', '--model-version', default='',
                   help='model version (default: the server\'s choice)')
    p.add_argument('-v', '--verbose', action='store_true')
    p.add_argument('-H', '--header', action='append', default=[],
                   metavar='NAME=VALUE',
                   help='a header sent with every request, e.g. the key of a '
                   'server that restricts its APIs (over gRPC also as '
                   'triton-grpc-protocol-NAME, the name Triton checks there); '
                   'repeatable')
    tls = p.add_argument_group(
        'TLS', 'for a server behind a proxy that ends TLS (nginx, an ingress) '
        'or Triton with gRPC SSL; the file flags imply --ssl')
    tls.add_argument('--ssl', action='store_true', help='connect with TLS')
    tls.add_argument('--root-certificates', metavar='PEM',
                     help='CA certificates to check the server against '
                     '(default: public roots: gRPC\'s own, the system\'s for HTTP)')
    tls.add_argument('--private-key', metavar='PEM',
                     help='the client key, for mutual TLS')
    tls.add_argument('--certificate-chain', metavar='PEM',
                     help='the client certificate, for mutual TLS')
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
                   'busy, with exponential backoff and jitter '
                   '(default: %(default)s)')
    p.add_argument('--out', type=Path, default=None,
                   help='write <stem>.jpg and <stem>.json per image and '
                   'detections.json here; images done in an earlier run '
                   'are skipped')
    args = p.parse_args(argv)
    if args.concurrency < 1:
        p.error('--concurrency must be 1 or more')
    if args.retries < 0:
        p.error('--retries must be 0 or more')
    pairs = [h.partition('=') for h in args.header]
    if any(not name.strip() or not sep for name, sep, _ in pairs):
        p.error('--header takes NAME=VALUE')
    args.headers = {name.strip(): value for name, _, value in pairs}
    files = [args.root_certificates, args.private_key, args.certificate_chain]
    if problem := not_found(files):
        p.error(problem)
    try:
        args.tls = Tls(*files) if args.ssl or any(files) else None
    except ValueError as exc:
        p.error(str(exc))
    return args


def describe(dets: Detections, score_thr: float, listed: int = 5) -> str:
    shown = dets[dets.scores > score_thr]
    items = [f'{n} {s:.2f}' for n, s in zip(shown.names[:listed],
                                             shown.scores[:listed])]
    more = ', ...' if len(shown) > listed else ''
    return (f'{len(shown)} detections above {score_thr:g}'
            + (f': {", ".join(items)}{more}' if items else ''))


def error(message: str) -> None:
    print(f'{PROG}: error: {message}', file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from .output import ResultFolder
    from .protocol import ServerUnavailable
    from .retry import Retry

    files = image_files(args.images)
    if not files:
        error('no images found in the given paths')
        return 1
    out = ResultFolder(args.out) if args.out is not None else None
    todo = [(i, p) for i, p in enumerate(files) if out is None or not out.done(p)]
    if len(todo) < len(files):
        print(f'skipping {len(files) - len(todo)} images already done in {args.out}')
    retry = Retry(retries=args.retries)
    # gRPC's core logs a failed TLS handshake at INFO on stderr, beside the
    # one line this program says of it
    os.environ.setdefault('GRPC_VERBOSITY', 'ERROR')
    try:
        from .detector import TritonDetector
        detector = TritonDetector(args.url, args.model, args.protocol,
                                  args.model_version, timeout=args.timeout,
                                  wait=args.wait, retry=retry,
                                  verbose=args.verbose, tls=args.tls,
                                  headers=args.headers)
    except (ServerUnavailable, ImportError) as exc:
        error(str(exc))
        return 2
    with detector:
        failed = run(detector, todo, out, args)
    if out is not None:
        written = out.collect(files)
        print(f'{args.out}: {written} of {len(files)} images annotated; '
              f'detections.json updated')
    if retry.summary():
        print(f'{PROG}: {retry.summary()}', file=sys.stderr)
    if failed:
        print(f'{PROG}: {failed} of {len(todo)} images failed', file=sys.stderr)
    return 1 if failed else 0


def run(detector, todo, out, args: argparse.Namespace) -> int:
    """Send every image, a line for each as it finishes; how many failed."""
    from .protocol import first_line

    def one(job):
        image_id, path = job
        try:
            data = path.read_bytes()
            dets = detector.infer_bytes(data)
            if out is not None:
                out.save(path, image_id, data, dets, args.score_thr)
            return path, dets, None
        except Exception as exc:  # reported per file; the run goes on
            return path, None, first_line(exc)

    failed = 0
    with ThreadPoolExecutor(args.concurrency) as pool:
        for path, dets, message in pool.map(one, todo):
            if message is not None:
                failed += 1
                print(f'{path}: error: {message}', file=sys.stderr, flush=True)
            else:
                print(f'{path}: {describe(dets, args.score_thr)}', flush=True)
    return failed


if __name__ == '__main__':
    sys.exit(main())
