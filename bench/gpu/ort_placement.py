"""Where ONNX Runtime runs each node of a graph, read from its own verbose log
of the placement.

An execution provider takes the nodes it has kernels for; the CPU provider
gets the rest, and ONNX Runtime also moves small shape computations to the
CPU on purpose. Every edge between the two is a copy (a Memcpy node) and,
on a GPU, a synchronisation. ONNX Runtime says which node went where only
in its verbose session log, written by its C++ logger to stderr, so the
session is made in a child process whose stderr is read.

    python -m bench.gpu.ort_placement MODEL.onnx [--device cuda]   prints JSON
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict

from export.device import Device
from ground import cli

PLACED = re.compile(r'VerifyEachNodeIsAssignedToAnEp\] (.*)$')
HEADER = re.compile(r'(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. '
                    r'Number of nodes: (\d+)')
NODE = re.compile(r'^\s+(\w+) \((.*)\)$')
MEMCPY = re.compile(r'(\d+) Memcpy nodes are added to the graph (\S+) for (\w+)')


def parse(log: str) -> Dict[str, object]:
    """Per provider, its node count and the op types of its nodes where the
    log lists them (it does not when one provider took all); the Memcpy
    nodes ONNX Runtime added, per graph."""
    providers: Dict[str, Dict] = {}
    current = None
    for line in log.splitlines():
        memcpy = MEMCPY.search(line)
        if memcpy:
            providers.setdefault('memcpy', {})[memcpy[2]] = int(memcpy[1])
        found = PLACED.search(line)
        if not found:
            continue
        text = found[1]
        header, node = HEADER.search(text), NODE.match(text)
        if header:
            current = providers.setdefault(header[1], {
                'nodes': int(header[2]), 'ops': Counter()})
        elif node and current is not None:
            current['ops'][node[1]] += 1
    memcpy = providers.pop('memcpy', {})
    return {'providers': {name: {'nodes': p['nodes'], 'ops': dict(p['ops'])}
                          for name, p in providers.items()},
            'memcpy': memcpy}


def placement(model: Path, device: Device) -> Dict[str, object]:
    """The placement of ``model``'s nodes on ``device`` (its providers as
    the detector's session gets them, TF32 off)."""
    run = subprocess.run([sys.executable, '-m', 'bench.gpu.ort_placement',
                          str(model), '--device', str(device), '--session'],
                         capture_output=True, text=True, timeout=600)
    if run.returncode:
        lines = (run.stderr.strip().splitlines() or ['no output'])
        raise cli.Failure(f'the session for {model.name} failed: {lines[-1]}')
    return parse(run.stderr)


def session(model: Path, device: Device) -> None:
    """The detector's session as the in-process runner makes it, logging
    verbosely: the placement is logged there."""
    import onnxruntime as ort

    from detection.runtime import OnnxDetector
    options = ort.SessionOptions()
    options.log_severity_level = 0
    OnnxDetector(model, providers=device.providers(), options=options)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m bench.gpu.ort_placement',
                                description=__doc__.splitlines()[0])
    p.add_argument('model', type=Path)
    p.add_argument('--device', type=Device.parse, default=Device())
    p.add_argument('--session', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.session:  # the child: its stderr is the log
        session(args.model, args.device)
        return 0

    def work() -> int:
        print(json.dumps(placement(args.model, args.device), indent=2))
        return 0
    return cli.run('bench.ort_placement', work)


if __name__ == '__main__':
    sys.exit(main())
