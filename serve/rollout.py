"""Rolling a newly published version in, on a running server, with no failed
request: what ``python -m serve --poll S`` does every S seconds.

The export's commit point is the ensemble's config (written last, pinning
the new version on every step). When it pins another version than the one
served, the steps are loaded with both versions, then the ensemble is loaded
from the repository (now running the new one), then the steps again with the
new version only; Triton unloads the old one once its requests are done. A
server that starts meanwhile simply loads what the repository says.
"""
from __future__ import annotations

import threading
from typing import Callable, Dict, List, Optional

from export.triton_config import parse

from .loading import Admin
from .server import TritonServer


def pins(config) -> Dict[str, int]:
    """Each step of an ensemble config and the version it runs."""
    return {s.model_name: s.model_version for s in config.ensemble_scheduling.step}


def served_ensembles(admin: Admin) -> Dict[str, Dict[str, int]]:
    """The ensembles the server has loaded, with the versions they pin."""
    found = {}
    for entry in admin.index():
        if entry.get('state') != 'READY':
            continue
        config = admin.config(entry['name'])
        if config.get('platform') == 'ensemble':
            found[entry['name']] = {
                s['model_name']: int(s['model_version'])
                for s in config['ensemble_scheduling']['step']}
    return found


def roll_out(server: TritonServer, admin: Admin, ensemble: str,
             now: Dict[str, int], new: Dict[str, int]) -> str:
    """Switch ``ensemble`` from the versions ``now`` to ``new``; one line."""
    load = server.loading.load
    for step, version in new.items():
        load(admin, step, versions=sorted({now.get(step, version), version}))
    load(admin, ensemble)
    for step in new:
        load(admin, step)
    return (f'model {ensemble}: rolled out version(s) '
            f'{sorted(set(new.values()))} (was {sorted(set(now.values()))})')


def check(server: TritonServer) -> List[str]:
    """One pass: roll out every ensemble whose published pins changed."""
    lines = []
    admin = server.admin()
    try:
        for ensemble, now in served_ensembles(admin).items():
            text = server.store.read(ensemble)
            new = pins(parse(text)) if text else now
            if new == now:
                continue
            try:
                lines.append(roll_out(server, admin, ensemble, now, new))
            except Exception as exc:  # tritonclient's own types
                lines.append(f'model {ensemble}: version(s) '
                             f'{sorted(set(new.values()))} not rolled out, '
                             f'still serving {sorted(set(now.values()))}: '
                             f'{str(exc).splitlines()[0]}')
    finally:
        admin.close()
    return lines


class Watcher(threading.Thread):
    """Checks every ``every`` seconds until ``stop``; reports each line."""

    def __init__(self, server: TritonServer, every: float,
                 report: Callable[[str], None]):
        super().__init__(daemon=True, name='rollout')
        self.server, self.every, self.report = server, every, report
        self.stopped = threading.Event()
        self.error: Optional[str] = None

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                for line in check(self.server):
                    self.report(line)
            except Exception as exc:  # a store or server hiccup: next pass
                self.report(f'rollout check failed: {str(exc).splitlines()[0]}')

    def stop(self) -> None:
        self.stopped.set()
