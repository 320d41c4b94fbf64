"""Result files: ``NAME.json`` headed by when, where and with what it was
measured, and ``NAME.md`` beside it, each written whole or not at all (a
run cut short leaves the last whole file, never half of one)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional

from triton_frcnn.files import write_atomic

from .versions import MEASURED_WITH, provenance


def headed(report: Dict, packages: Iterable[str] = MEASURED_WITH) -> Dict:
    """``report`` with its provenance first (kept when it has one: a report
    written again as a run goes on keeps its start)."""
    return {'provenance': report.get('provenance') or provenance(packages),
            **report}


def title(report: Dict, what: str, *details: str) -> str:
    """A result's markdown heading: ``# WHAT (DATE, N CPUs, DETAILS...)``,
    the date and CPUs from its provenance."""
    head = report['provenance']
    return (f"# {what} ({head['date'][:10]}, {head['machine']['cpus']} CPUs"
            + ''.join(f', {d}' for d in details) + ')')


def write_report(path: Path, report: Dict,
                 render: Optional[Callable[[Dict], str]] = None,
                 packages: Iterable[str] = MEASURED_WITH) -> Dict:
    """``report``, headed, as ``path`` (.json) and ``render`` of it as the
    .md beside; the headed report."""
    report = headed(report, packages)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(report, indent=2) + '\n')
    if render is not None:
        write_atomic(path.with_suffix('.md'), render(report))
    return report
