"""python -m bench.resources: what a pod serving the R50-FPN needs, measured.

Serves the full-size R50-FPN (seeded random weights) exported for ``--cpus``
CPUs, keeps ``--concurrency`` clients busy for ``--requests`` checked
requests, and samples the whole server (tritonserver and its Python stubs)
every half second: resident memory (RSS summed, which counts shared pages
once per process, and PSS, which shares them out) and CPU time. Writes
``resources.json`` and ``resources.md``; the Kubernetes overlays' requests
and limits come from it (``tests/test_deploy.py`` checks they do).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from detection import paths
from ground import cli
from ground.results import write_report

# a pod's memory: the peak resident set with this much room above it,
# rounded up to this step (Kubernetes kills a container at its limit)
HEADROOM = 1.5
STEP_MIB = 256
# a probe's timeout: the slowest health answer seen under load, times this
PROBE_HEADROOM = 5


class Sampler(threading.Thread):
    """The server's process tree, every ``every`` seconds until stopped."""

    probes = ('live', 'ready')  # /v2/health/*, what the pod's probes call

    def __init__(self, pid: int, health: str, every: float = 0.5):
        super().__init__(daemon=True, name='resources')
        import psutil
        self.root, self.every = psutil.Process(pid), every
        self.health = health  # http://host:port/v2/health
        self.stopped = threading.Event()
        self.samples: List[Dict[str, float]] = []

    def probe_ms(self, url: str) -> float:
        """How long the health endpoint took to answer, as a kubelet's
        probe waits for it (a failure counts as this sampler's wait)."""
        import urllib.request
        start = time.perf_counter()
        try:
            urllib.request.urlopen(url, timeout=30).read()
        except OSError:
            pass
        return (time.perf_counter() - start) * 1000

    def sample(self) -> Dict[str, float]:
        import psutil
        rss = pss = cpu = 0.0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                memory = proc.memory_full_info()
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            rss, pss = rss + memory.rss, pss + memory.pss
            cpu += times.user + times.system
        found = {'t': time.monotonic(), 'rss_mib': rss / 2**20,
                 'pss_mib': pss / 2**20, 'cpu_s': cpu}
        for probe in self.probes:
            found[f'{probe}_ms'] = self.probe_ms(f'{self.health}/{probe}')
        return found

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.samples.append(self.sample())


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser('bench.resources', __doc__)
    p.add_argument('--cpus', type=int, default=None,
                   help='export for this many CPUs (default: this host\'s)')
    p.add_argument('--concurrency', type=int, default=8)
    p.add_argument('--requests', type=int, default=48)
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'resources')
    args = p.parse_args(argv)
    cli.at_least(p, 1, '--cpus, --concurrency and --requests',
                 args.concurrency, args.requests, args.cpus or 1)
    return args


def recommended(peak_rss_mib: float, cpus: int) -> Dict[str, str]:
    """A pod's requests (= limits): the CPUs the export budgeted, and the
    peak resident set with headroom."""
    steps = math.ceil(peak_rss_mib * HEADROOM / STEP_MIB)
    return {'cpu': str(cpus), 'memory': f'{steps * STEP_MIB}Mi'}


def measure(args: argparse.Namespace) -> Dict:
    from export.request import Export, Placement, Request
    from tools.soak import soak
    from tools.stack import served
    from export.random_checkpoint import ensure
    ensure(paths.R50_CONFIG, paths.RANDOM_R50_CHECKPOINT)
    images = sorted(paths.SAMPLES.glob('*.jpg'))
    request = Request(
        Export(config=paths.R50_CONFIG, checkpoint=paths.RANDOM_R50_CHECKPOINT,
               images=images, name='r50',
               repository=args.out / 'model_repository'),
        placement=Placement(cpus=args.cpus))
    with served(request.export.repository, [request]) as stack, \
            stack.detector('r50') as detector:
        sampler = Sampler(stack.server.process.pid,
                          f'http://{stack.http_url}/v2/health')
        idle = sampler.sample()
        sampler.start()
        try:
            report = soak(detector, images, args.requests, args.concurrency)
            loaded = len(sampler.samples)
            largest = largest_request(stack, 'r50')
        finally:
            sampler.stopped.set()
            sampler.join()
        meta = json.loads((stack.exports['r50'] / 'metadata.json').read_text())
        capacity = meta['capacity']
    busy, biggest = sampler.samples[:loaded], sampler.samples[loaded:]
    cpu_cores = (busy[-1]['cpu_s'] - busy[0]['cpu_s']) / (busy[-1]['t'] - busy[0]['t'])
    peak_rss = max(s['rss_mib'] for s in busy)
    largest_rss = max(s['rss_mib'] for s in biggest or busy)
    return {
        'model': f'{paths.R50_CONFIG.name} (seeded random weights), served '
                 'as the ensemble r50',
        'capacity': capacity, 'concurrency': args.concurrency,
        'requests': report.sent, 'failed': report.failed,
        'mismatched': report.mismatched, 'seconds': report.seconds,
        'samples': len(busy),
        'idle_rss_mib': round(idle['rss_mib']),
        'idle_pss_mib': round(idle['pss_mib']),
        'peak_rss_mib': round(peak_rss),
        'peak_pss_mib': round(max(s['pss_mib'] for s in busy)),
        'largest_request': {**largest, 'peak_rss_mib': round(largest_rss)},
        'cpu_cores_used': round(cpu_cores, 2),
        'probe_ms': {probe: {'p99': round(float(np.percentile(
                                 [s[f'{probe}_ms'] for s in busy], 99)), 1),
                             'max': round(max(s[f'{probe}_ms'] for s in busy), 1)}
                     for probe in Sampler.probes},
        'recommended': recommended(max(peak_rss, largest_rss), capacity['cpus']),
        'probe_timeout_s': probe_timeout(busy),
    }


def largest_request(stack, model: str) -> Dict:
    """One request of as many images as the ensemble takes at once, each
    resized to the largest canvas: the most one request can make the
    detector hold, which a pod must survive."""
    import cv2
    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(stack.grpc_url)
    batch = client.get_model_config(model).config.max_batch_size
    photo = cv2.imread(str(paths.SAMPLES / 'chelsea.jpg'))
    image = cv2.imencode('.jpg', cv2.resize(photo, (1333, 800)))[1].tobytes()
    tensor = grpcclient.InferInput('IMAGE', [batch, 1], 'BYTES')
    tensor.set_data_from_numpy(np.array([image] * batch, dtype=object)
                               .reshape(-1, 1))
    start = time.perf_counter()
    answer = client.infer(model, [tensor])
    return {'images': batch, 'size': '1333x800',
            'seconds': round(time.perf_counter() - start, 1),
            'answered': int(answer.as_numpy('NUM_DETECTIONS').shape[0])}


def probe_timeout(samples: List[Dict[str, float]]) -> int:
    """A probe's timeoutSeconds: the slowest health answer under load,
    times PROBE_HEADROOM, in whole seconds (at least 1)."""
    slowest = max(s[f'{p}_ms'] for s in samples for p in Sampler.probes)
    return max(1, math.ceil(slowest * PROBE_HEADROOM / 1000))


def markdown(report: Dict) -> str:
    r = report
    return '\n'.join([
        f'### Resources of the served R50-FPN ({r["provenance"]["date"]})', '',
        f'{r["model"]}; exported for {r["capacity"]["cpus"]} CPUs; '
        f'{r["requests"]} checked requests at {r["concurrency"]} clients in '
        f'{r["seconds"]} s ({r["failed"]} failed, {r["mismatched"]} '
        f'mismatched), sampled {r["samples"]} times.', '',
        '| | RSS MiB (summed) | PSS MiB |', '| --- | --- | --- |',
        f'| idle, models loaded | {r["idle_rss_mib"]} | {r["idle_pss_mib"]} |',
        f'| peak under load | {r["peak_rss_mib"]} | {r["peak_pss_mib"]} |',
        f'| peak of one request of {r["largest_request"]["images"]} images '
        f'of {r["largest_request"]["size"]} | '
        f'{r["largest_request"]["peak_rss_mib"]} | |', '',
        f'CPU used under load: {r["cpu_cores_used"]} cores. A pod\'s requests '
        f'and limits: cpu {r["recommended"]["cpu"]}, memory '
        f'{r["recommended"]["memory"]} (the larger peak RSS x {HEADROOM}, '
        f'in {STEP_MIB} MiB steps).', '',
        'Health endpoints under that load (ms): ' + ', '.join(
            f'{probe} p99 {v["p99"]}, max {v["max"]}'
            for probe, v in r['probe_ms'].items())
        + f'; the probes\' timeout: {r["probe_timeout_s"]} s '
        f'(the slowest x {PROBE_HEADROOM}).', ''])


def resources(args: argparse.Namespace) -> int:
    report = write_report(args.out / 'resources.json', measure(args), markdown)
    print(markdown(report))
    return 0 if report['failed'] == report['mismatched'] == 0 else 1


main = cli.entry('resources', parse_args, resources)


if __name__ == '__main__':
    sys.exit(main())
