"""python -m tools.soak: a bounded load test with every response checked.

Sends ``--requests`` requests at ``--concurrency`` in flight, cycling through
the given images, and compares each response with that image's result from a
single, unloaded request: any difference is a mismatch. With ``--start``, it
starts its own server on the repository and reports that server's memory
(resident set of tritonserver and its Python stubs) before and after.
"""
from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import numpy as np

from ground import cli
from ground.process import resident_mib
from ground.results import headed, write_report
from triton_frcnn.client import ServerUnavailable, TritonDetector


@dataclass
class SoakReport:
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    mismatched: int = 0
    seconds: float = 0.0
    server_ready_after: bool = False
    server_rss_mb_before: Optional[float] = None
    server_rss_mb_after: Optional[float] = None
    server_rss_mb_by_quarter: List[float] = field(default_factory=list)
    first_error: str = ''
    interrupted: bool = False  # SIGTERM or Ctrl-C: the counts so far


def same(a, b) -> bool:
    return (len(a) == len(b) and np.array_equal(a.labels, b.labels)
            and np.allclose(a.boxes, b.boxes, atol=1e-3)
            and np.allclose(a.scores, b.scores, atol=1e-5))


def soak(detector: TritonDetector, images: List[Path], requests: int,
         concurrency: int, progress=lambda: None,
         memory: Optional[Callable[[], float]] = None) -> SoakReport:
    """``memory`` (the server's RSS) is sampled after each quarter of the
    requests: a plateau, not a climb, is what bounded means."""
    payloads = [p.read_bytes() for p in images]
    expected = [detector.infer_bytes(p) for p in payloads]
    report = SoakReport()
    start = time.perf_counter()

    def one(i: int):
        k = i % len(payloads)
        try:
            return same(detector.infer_bytes(payloads[k]), expected[k]), None
        except Exception as exc:  # counted, never raised: the soak goes on
            return None, str(exc).splitlines()[0] if str(exc) else repr(exc)
        finally:
            progress()

    quarter = max(1, requests // 4)
    answers = in_flight(one, requests, concurrency)
    try:
        for ok, error in answers:
            report.sent += 1
            if memory is not None and report.sent % quarter == 0:
                report.server_rss_mb_by_quarter.append(memory())
            if error is not None:
                report.failed += 1
                report.first_error = report.first_error or error
            else:
                report.succeeded += 1
                report.mismatched += 0 if ok else 1
    except KeyboardInterrupt:
        # the report so far, at once: requests not yet sent are dropped,
        # and ones that hang (a stopped server) are not waited for
        report.interrupted = True
    report.seconds = round(time.perf_counter() - start, 1)
    return report


def in_flight(call: Callable[[int], tuple], count: int,
              concurrency: int) -> Iterator[tuple]:
    """``call(0..count-1)`` with ``concurrency`` in flight, each answer as
    it comes. The workers are daemon threads: a program interrupted while
    some hang exits without them."""
    jobs: queue.Queue = queue.Queue()
    answers: queue.Queue = queue.Queue()
    for i in range(count):
        jobs.put(i)

    def work() -> None:
        while True:
            try:
                i = jobs.get_nowait()
            except queue.Empty:
                return
            answers.put(call(i))
    for _ in range(concurrency):
        threading.Thread(target=work, daemon=True, name='soak').start()
    for _ in range(count):
        yield answers.get()


def main(argv=None) -> int:
    p = cli.parser('tools.soak', __doc__)
    p.add_argument('images', nargs='+', type=Path)
    p.add_argument('-u', '--url', default='localhost:8001')
    p.add_argument('-m', '--model', default='faster_rcnn')
    p.add_argument('--requests', type=int, default=2000)
    p.add_argument('--concurrency', type=int, default=16)
    p.add_argument('--start', type=Path, metavar='REPOSITORY', default=None,
                   help='start a server on this repository (free ports)')
    p.add_argument('--out', type=Path, default=None, help='JSON report')
    args = p.parse_args(argv)
    images = cli.images(p, args.images)
    cli.at_least(p, 1, '--requests and --concurrency', args.requests,
                 args.concurrency)
    return cli.run('soak', lambda: soak_and_report(args, images),
                   failures=(ServerUnavailable,))


def soak_and_report(args: argparse.Namespace, images: List[Path]) -> int:
    report = measure(args, images)
    result = headed(asdict(report))
    if args.out:
        write_report(args.out, result)
    print(json.dumps(result, indent=2))
    if report.interrupted:
        print('soak: interrupted', file=sys.stderr)
        return cli.INTERRUPTED
    ok = (report.failed == 0 and report.mismatched == 0
          and report.server_ready_after)
    return 0 if ok else 1


def measure(args: argparse.Namespace, images: List[Path]) -> SoakReport:
    """The soak on the server at ``--url``, or on one started for it."""
    if args.start is None:
        with TritonDetector(args.url, args.model, wait=60) as detector:
            report = run(detector, images, args)
            if not report.interrupted:  # a stopped server never answers
                report.server_ready_after = detector.client.is_server_ready()
        return report
    from .stack import served
    with served(args.start) as stack, stack.detector(args.model) as detector:
        pid = stack.server.process.pid
        before = resident_mib(pid)
        report = run(detector, images, args, memory=lambda: resident_mib(pid))
        report.server_rss_mb_before = before
        report.server_rss_mb_after = resident_mib(pid)
        report.server_ready_after = stack.server.is_ready()
    return report


def run(detector: TritonDetector, images: List[Path], args,
        memory: Optional[Callable[[], float]] = None) -> SoakReport:
    from tqdm import tqdm
    with tqdm(total=args.requests, unit='req', file=sys.stderr) as bar:
        return soak(detector, images, args.requests, args.concurrency,
                    bar.update, memory)


if __name__ == '__main__':
    sys.exit(main())
