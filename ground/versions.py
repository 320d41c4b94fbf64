"""Installed package versions, written beside every result (an export's
metadata.json, a benchmark's report): a number means little without them."""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from typing import Dict, Iterable

from .engine import Engine

# what every measurement ran on, beside its own packages
MEASURED_WITH = ('numpy', 'onnxruntime', 'openvino', 'torch', 'mmdet',
                 'tritonclient', 'nvidia-pytriton')


def package_versions(packages: Iterable[str]) -> Dict[str, str]:
    """Python's version and each installed package's; absent ones left out."""
    found = {'python': platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def machine() -> Dict[str, object]:
    """The CPU model, how many CPUs this process may use, memory, OS."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(':', 1)[1].strip() for line in
                   open('/proc/cpuinfo') if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    return {'cpu': cpu, 'cpus': len(os.sched_getaffinity(0)),
            'memory_gib': round(memory / 2**30, 1),
            'platform': platform.platform()}


def provenance(packages: Iterable[str] = MEASURED_WITH) -> Dict[str, object]:
    """When, on what and with what a result was measured, and the engine
    its servers ran (a result that compares engines names each in its
    rows): the head of every result file under docs/."""
    return {'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'machine': machine(), 'versions': package_versions(packages),
            'engine': Engine.from_environment().describe()}
