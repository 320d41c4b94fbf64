"""Triton's own load generator on the detector model, fed a real image.

The detector's inputs are the preprocessed tensor and the resized size; with
perf_analyzer's random data the boxes would be clipped to nothing and NMS
would have no work, so one sample image, preprocessed exactly as served, is
written as raw tensors for ``--input-data``.
"""
from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from detection import paths
from detection.preprocess import Prepared

HOME = paths.PERF_ANALYZER
BINARY = HOME / 'bin' / 'perf_analyzer'
UNSTABLE = 'Failed to obtain stable measurement'


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer failed for another reason than unstable windows."""


def unavailable() -> Optional[str]:
    """Why perf_analyzer cannot run here, or None."""
    if not BINARY.exists():
        return f'{BINARY} is missing (run scripts/setup.sh)'
    probe = subprocess.run([str(BINARY), '--version'], env=_env(),
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return (probe.stderr.strip().splitlines() or ['exit status '
                                                      f'{probe.returncode}'])[-1]
    return None


def _env() -> dict:
    env = dict(os.environ)
    env['LD_LIBRARY_PATH'] = ':'.join(
        filter(None, [str(HOME / 'lib'), env.get('LD_LIBRARY_PATH')]))
    return env


def measure(url: str, model: str, concurrency: Sequence[int], data_args:
            Sequence[str], work: Path, requests_per_window: int = 6
            ) -> List[Dict[str, str]]:
    """perf_analyzer's CSV rows for the levels asked for, over gRPC. A level
    whose windows never agree within 25% has no row: perf_analyzer goes on to
    the next level, and exits non-zero when the last one fails; that is not
    an error here."""
    table = work / 'perf_analyzer.csv'
    command = [
        str(BINARY), '-m', model, '-u', url, '-i', 'grpc', '-b', '1',
        *data_args,
        '--concurrency-range', f'{min(concurrency)}:{max(concurrency)}',
        '--measurement-mode', 'count_windows',
        '--measurement-request-count', str(requests_per_window),
        '--stability-percentage', '25', '--max-trials', '6',
        '--percentile', '95', '-f', str(table)]
    table.unlink(missing_ok=True)  # never read the previous model's rows
    done = subprocess.run(command, env=_env(), capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0 and UNSTABLE not in output:
        tail = output.strip().splitlines()[-3:]
        raise PerfAnalyzerError(f'perf_analyzer failed: {" / ".join(tail)}')
    if not table.exists():
        return []
    with table.open() as f:
        return [row for row in csv.DictReader(f)
                if int(row['Concurrency']) in concurrency]


def _ms(row: Dict[str, str], percentile: int) -> float:
    return round(int(row[f'p{percentile} latency']) / 1000, 1)


def run(url: str, model: str, sample: Prepared, concurrency: Sequence[int],
        work: Path, label: str = '') -> Dict[str, Dict]:
    """The detector model on one image, preprocessed as served: p50/p95
    latency and throughput per level, rows named ``perf_analyzer<label> c=N``."""
    data = work / 'perf_analyzer_input'
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    sample.tensor.astype(np.float32).tofile(data / 'input')
    np.asarray(sample.img_shape, np.float32).tofile(data / 'img_shape')
    h, w = sample.tensor.shape[1:]
    rows = measure(url, model, concurrency, [
        '--input-data', str(data), '--shape', f'input:3,{h},{w}',
        '--shape', 'img_shape:2'], work)
    return {f'perf_analyzer{label} c={row["Concurrency"]}': {
        'p50_ms': _ms(row, 50), 'p95_ms': _ms(row, 95),
        'throughput_ips': round(float(row['Inferences/Second']), 3),
        'requests': None} for row in rows}


def ensemble(url: str, model: str, payloads: Sequence[bytes],
             concurrency: Sequence[int], work: Path) -> List[Dict]:
    """The ensemble on encoded images, cycled: one row per level that
    perf_analyzer measured. Each image is given as a serialized BYTES tensor
    (a little-endian uint32 length, then the bytes), base64-encoded."""
    work.mkdir(parents=True, exist_ok=True)
    data = work / 'ensemble_input.json'
    data.write_text(json.dumps({'data': [
        {'IMAGE': {'b64': base64.b64encode(
            struct.pack('<I', len(p)) + p).decode(), 'shape': [1]}}
        for p in payloads]}))
    rows = []
    for c in concurrency:  # one run a level: the levels double
        rows += [{'concurrency': c,
                  'throughput': round(float(row['Inferences/Second']), 3),
                  'p50_ms': _ms(row, 50), 'p95_ms': _ms(row, 95),
                  'p99_ms': _ms(row, 99)}
                 for row in measure(url, model, [c],
                                    ['--input-data', str(data)], work)]
    return rows
