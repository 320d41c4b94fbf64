"""Closed-loop load on the served ensemble: ``concurrency`` clients, each
sending its next image as soon as the last one answered, for a fixed time.

Built on the asyncio client (one gRPC channel, as many requests in flight as
clients). A request's latency runs from its first send to its answer,
retries after "server busy" included; a refusal for load is counted apart as
rejected and retried with backoff and jitter, never reported as an error
while retries remain. Triton's own statistics, read before and after, split
each composing model's time into queueing and compute.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Sequence

import numpy as np
from triton_frcnn.client import AsyncTritonDetector, Retry
from triton_frcnn.client.protocol import first_line

# A refused client retries as the CLI does (0.5 s growing to 10 s, equal
# jitter), for as long as it takes: a request is never an error while the
# server only says busy. Each refusal costs the server the preprocessing it
# did before the detector's queue refused it, so the backoff must not be short.
BUSY_RETRY = dict(retries=10_000, backoff=0.5, max_delay=10.0)


# The window opens once every client has had an answer (before that the
# queues are still filling: at 64 clients on the R50-FPN, over a minute) but
# never later than this: a client the queue keeps refusing must not stall the
# measurement.
MAX_WARMUP = 180.0


@dataclass
class Level:
    concurrency: int
    seconds: float = 0.0
    warmup: float = 0.0
    latencies: List[float] = field(default_factory=list)
    finished: List[float] = field(default_factory=list)  # answer times, s
    errors: int = 0
    rejected: int = 0       # refusals for load (queue full, queue timeout)
    retried: int = 0        # every retry, refusals included
    first_error: str = ''
    models: Dict[str, Dict] = field(default_factory=dict)

    def throughput(self) -> float:
        """Answers per second between the window's first and last answer:
        a count over the window is off by up to an answer at each edge,
        5% of the 40 that a 90 s window holds for the R50-FPN."""
        if len(self.finished) < 2:
            return len(self.finished) / self.seconds
        times = sorted(self.finished)
        return (len(times) - 1) / (times[-1] - times[0])

    def row(self) -> Dict:
        ms = np.asarray(self.latencies or [np.nan]) * 1000
        p = {q: round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)}
        return {'concurrency': self.concurrency,
                'throughput': round(self.throughput(), 3),
                'p50_ms': p[50], 'p95_ms': p[95], 'p99_ms': p[99],
                'requests': len(self.latencies), 'errors': self.errors,
                'rejected': self.rejected, 'retried': self.retried,
                'seconds': round(self.seconds, 1),
                'warmup_s': round(self.warmup, 1),
                'first_error': self.first_error, 'models': self.models}


@dataclass
class Window:
    """When answers count. It opens ``warmup`` seconds in, once every client
    has had an answer (at most MAX_WARMUP), and stays open for the level's
    seconds; after it the clients stop sending and what is in flight drains."""
    concurrency: int
    begin: float = float('inf')
    end: float = float('inf')
    answered: set = field(default_factory=set)
    everyone: asyncio.Event = field(default_factory=asyncio.Event)

    def holds(self, t: float) -> bool:
        return self.begin <= t < self.end

    def answer_from(self, client: int) -> None:
        self.answered.add(client)
        if len(self.answered) == self.concurrency:
            self.everyone.set()


async def drive(urls: Sequence[str], model: str, composing: Sequence[str],
                payloads: Sequence[bytes], concurrency: int, warmup: float,
                seconds: float) -> Level:
    """``concurrency`` clients sending without pause, spread over ``urls``
    (one server, or each replica of a cluster); what finishes inside the
    window counts, refusals and errors in it too, and Triton's statistics
    (of the first URL) are read at the window's edges."""
    retry = Retry(**BUSY_RETRY)
    level = Level(concurrency, seconds)
    window = Window(concurrency)
    images = itertools.cycle(payloads)
    async with contextlib.AsyncExitStack() as stack:
        detectors = [await stack.enter_async_context(
            await AsyncTritonDetector.connect(url, model, wait=60, timeout=900,
                                              retry=retry)) for url in urls]
        await asyncio.gather(
            measure(detectors[0].client.get_inference_statistics, composing,
                    retry, level, window, warmup),
            *(send(detectors[i % len(detectors)], images, i, level, window)
              for i in range(concurrency)))
    return level


async def send(detector: AsyncTritonDetector, images: Iterator[bytes],
               index: int, level: Level, window: Window) -> None:
    """One client: the next image as soon as the last one answered."""
    while time.perf_counter() < window.end:
        sent = time.perf_counter()
        try:
            await detector.infer_bytes(next(images))
            done = time.perf_counter()
            if window.holds(done):
                level.latencies.append(done - sent)
                level.finished.append(done)
        except Exception as exc:  # counted; the load goes on
            if window.holds(time.perf_counter()):
                level.errors += 1
                level.first_error = level.first_error or first_line(exc)
        window.answer_from(index)


async def measure(statistics, composing: Sequence[str], retry: Retry,
                  level: Level, window: Window, warmup: float) -> None:
    """Open the window, hold it for the level's seconds, and count what
    Triton and the retrying clients saw in it."""
    start = time.perf_counter()
    try:
        await asyncio.sleep(warmup)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(window.everyone.wait(),
                                   max(0.0, MAX_WARMUP - warmup))
        snapshot = await model_stats(statistics, composing)
        busy, retried = retry.busy, retry.retried
        window.begin = time.perf_counter()
        window.end = window.begin + level.seconds
        level.warmup = window.begin - start
        await asyncio.sleep(level.seconds)
        level.rejected = retry.busy - busy
        level.retried = retry.retried - retried
        level.models = split(snapshot, await model_stats(statistics, composing))
    finally:  # the clients stop sending, whatever happened here
        window.end = min(window.end, time.perf_counter())


async def model_stats(statistics, models: Sequence[str]) -> Dict[str, Dict]:
    """Cumulative request count and queue/compute nanoseconds per model;
    ``statistics``: the aio client's ``get_inference_statistics``."""
    found = {}
    for name in models:
        for entry in (await statistics(name, as_json=True)).get(
                'model_stats', []):
            stats = entry['inference_stats']
            ns = {k: int(stats.get(k, {}).get('ns', 0)) for k in (
                'queue', 'compute_input', 'compute_infer', 'compute_output')}
            found[name] = {'requests': int(stats.get('success', {}).get(
                'count', 0)), 'executions': int(entry.get('execution_count', 0)),
                **ns}
    return found


def split(before: Dict[str, Dict], after: Dict[str, Dict]) -> Dict[str, Dict]:
    """Per model over a level: mean queue and compute ms per request and
    requests per execution (the batch size the batcher achieved)."""
    rows = {}
    for name, end in after.items():
        start = before.get(name, {})
        delta = {k: v - start.get(k, 0) for k, v in end.items()}
        n = max(delta['requests'], 1)
        compute = (delta['compute_input'] + delta['compute_infer']
                   + delta['compute_output'])
        rows[name] = {'queue_ms': round(delta['queue'] / n / 1e6, 1),
                      'compute_ms': round(compute / n / 1e6, 1),
                      'requests': delta['requests'],
                      'per_execution': round(delta['requests'] / max(
                          delta['executions'], 1), 2)}
    return rows


def share(models: Dict[str, Dict], names: Sequence[str]) -> float:
    """``names``' part of the time a request spends in the composing models,
    queueing and compute (from ``split``)."""
    spent = {n: m['queue_ms'] + m['compute_ms'] for n, m in models.items()}
    total = sum(spent.values())
    return sum(spent[n] for n in names) / total if total else 0.0
