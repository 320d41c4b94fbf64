"""A network namespace per replica, where root allows: as pods are, each
replica is its own host to nginx and the store."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import List

from .errors import ClusterError


def namespaces_possible() -> bool:
    """Root, and ``ip netns`` works here."""
    if os.geteuid() != 0 or shutil.which('ip') is None:
        return False
    probe = f'frcnn-probe-{os.getpid()}'
    made = subprocess.run(['ip', 'netns', 'add', probe], capture_output=True)
    subprocess.run(['ip', 'netns', 'del', probe], capture_output=True)
    return made.returncode == 0


class Namespaces:
    """A network namespace per replica, joined to this host by a veth pair:
    10.77.<n>.1 here, 10.77.<n>.2 there, n a subnet no interface here uses
    (a namespace outlives its name while a process still runs in it)."""

    def __init__(self):
        self.made: List[str] = []

    @staticmethod
    def free_subnet() -> int:
        shown = subprocess.run(['ip', '-o', '-4', 'addr'], capture_output=True,
                               text=True).stdout
        used = {int(n) for n in re.findall(r'inet 10\.77\.(\d+)\.', shown)}
        return next(n for n in range(256) if n not in used)

    def add(self, index: int) -> tuple:
        subnet = self.free_subnet()
        name, here, there = (f'frcnn-r{index}-{os.getpid()}',
                             f'10.77.{subnet}.1', f'10.77.{subnet}.2')
        link = f'vfr{subnet}-{os.getpid() % 10000}'
        for command in (['ip', 'netns', 'add', name],
                        ['ip', 'link', 'add', link, 'type', 'veth', 'peer',
                         'name', 'eth0', 'netns', name],
                        ['ip', 'addr', 'add', f'{here}/24', 'dev', link],
                        ['ip', 'link', 'set', link, 'up'],
                        ['ip', '-n', name, 'addr', 'add', f'{there}/24', 'dev', 'eth0'],
                        ['ip', '-n', name, 'link', 'set', 'eth0', 'up'],
                        ['ip', '-n', name, 'link', 'set', 'lo', 'up']):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise ClusterError(f'{" ".join(command)}: {done.stderr.strip()}')
            if command[:3] == ['ip', 'netns', 'add']:
                self.made.append(name)
        return name, here, there

    def remove(self) -> None:
        for name in self.made:  # deleting a namespace deletes its veth pair
            subprocess.run(['ip', 'netns', 'del', name], capture_output=True)
