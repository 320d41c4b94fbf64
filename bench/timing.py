"""Timing a call over payloads: warm-up, then rounds at a concurrency, as
latency percentiles and throughput (``python -m bench`` and ``bench.gpu``)."""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

from detection import paths
from ground import cli


def add_arguments(p: argparse.ArgumentParser, rounds: int,
                  concurrency: List[int]) -> None:
    """What a timed benchmark takes: ``--images``, ``--rounds`` and the
    ``--concurrency`` levels."""
    p.add_argument('--images', type=Path, nargs='+', default=[paths.SAMPLES])
    p.add_argument('--rounds', type=int, default=rounds)
    p.add_argument('--concurrency', type=int, nargs='+', default=concurrency)


def checked(p: argparse.ArgumentParser, args: argparse.Namespace,
            *levels: int) -> argparse.Namespace:
    """``args`` with its images found; a usage error where the rounds or a
    concurrency level (``--concurrency``'s, and ``levels``) is below 1."""
    args.images = cli.images(p, args.images)
    cli.at_least(p, 1, '--rounds and the concurrency levels', args.rounds,
                 *args.concurrency, *levels)
    return args


def latency_stats(latencies: Sequence[float], wall: float, count: int) -> Dict:
    ms = np.asarray(latencies) * 1000
    return {'p50_ms': round(float(np.percentile(ms, 50)), 1),
            'p95_ms': round(float(np.percentile(ms, 95)), 1),
            'throughput_ips': round(count / wall, 3), 'requests': count}


def timed(call: Callable[[bytes], object], payloads: List[bytes], rounds: int,
          concurrency: int, bar) -> Dict:
    """Warm up on every image, then ``rounds`` passes with ``concurrency``
    calls in flight."""
    for payload in payloads:
        call(payload)
    jobs = payloads * rounds

    def one(payload):
        start = time.perf_counter()
        call(payload)
        bar.update()
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, jobs))
    return latency_stats(latencies, time.perf_counter() - start, len(jobs))
