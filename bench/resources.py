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

from detection import paths
from ground.cli import run
from ground.results import write_report

# a pod's memory: the peak resident set with this much room above it,
# rounded up to this step (Kubernetes kills a container at its limit)
HEADROOM = 1.5
STEP_MIB = 256


class Sampler(threading.Thread):
    """The server's process tree, every ``every`` seconds until stopped."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True, name='resources')
        import psutil
        self.root, self.every = psutil.Process(pid), every
        self.stopped = threading.Event()
        self.samples: List[Dict[str, float]] = []

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
        return {'t': time.monotonic(), 'rss_mib': rss / 2**20,
                'pss_mib': pss / 2**20, 'cpu_s': cpu}

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.samples.append(self.sample())


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='python -m bench.resources',
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cpus', type=int, default=None,
                   help='export for this many CPUs (default: this host\'s)')
    p.add_argument('--concurrency', type=int, default=8)
    p.add_argument('--requests', type=int, default=48)
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'resources')
    args = p.parse_args(argv)
    if min(args.concurrency, args.requests, args.cpus or 1) < 1:
        p.error('--cpus, --concurrency and --requests must be 1 or more')
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
        sampler = Sampler(stack.server.process.pid)
        idle = sampler.sample()
        sampler.start()
        try:
            report = soak(detector, images, args.requests, args.concurrency)
        finally:
            sampler.stopped.set()
            sampler.join()
        capacity = json.loads((stack.exports['r50'] / 'metadata.json')
                              .read_text())['capacity']
    busy = sampler.samples
    cpu_cores = (busy[-1]['cpu_s'] - busy[0]['cpu_s']) / (busy[-1]['t'] - busy[0]['t'])
    peak_rss = max(s['rss_mib'] for s in busy)
    return {
        'model': f'{paths.R50_CONFIG.name} (seeded random weights), served '
                 'as the ensemble r50 on the local stand-in',
        'capacity': capacity, 'concurrency': args.concurrency,
        'requests': report.sent, 'failed': report.failed,
        'mismatched': report.mismatched, 'seconds': report.seconds,
        'samples': len(busy),
        'idle_rss_mib': round(idle['rss_mib']),
        'idle_pss_mib': round(idle['pss_mib']),
        'peak_rss_mib': round(peak_rss),
        'peak_pss_mib': round(max(s['pss_mib'] for s in busy)),
        'cpu_cores_used': round(cpu_cores, 2),
        'recommended': recommended(peak_rss, capacity['cpus']),
    }


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
        f'| peak under load | {r["peak_rss_mib"]} | {r["peak_pss_mib"]} |', '',
        f'CPU used under load: {r["cpu_cores_used"]} cores. A pod\'s requests '
        f'and limits: cpu {r["recommended"]["cpu"]}, memory '
        f'{r["recommended"]["memory"]} (peak RSS x {HEADROOM}, in '
        f'{STEP_MIB} MiB steps).', ''])


def main(argv=None) -> int:
    args = parse_args(argv)
    return run('resources', lambda: resources(args))


def resources(args: argparse.Namespace) -> int:
    report = write_report(args.out / 'resources.json', measure(args), markdown)
    print(markdown(report))
    return 0 if report['failed'] == report['mismatched'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
