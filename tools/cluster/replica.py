"""One replica: ``python -m serve`` on its own CPU core (and network
namespace), reading the repository from the store."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from detection import paths
from ground.process import free_port, stop_group

from .errors import wait_http
from .s3 import CREDENTIALS


@dataclass
class Replica:
    """One ``python -m serve`` process: its address as nginx reaches it."""
    index: int
    host: str                 # the replica's address (its namespace's, or loopback)
    store_host: str           # where it reaches the S3 server
    core: int
    workdir: Path
    namespace: Optional[str] = None
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: Optional[subprocess.Popen] = None
    repository: str = ''      # s3://, as this replica reaches the store
    poll: float = 2.0

    def command(self) -> List[str]:
        serve = [sys.executable, '-m', 'serve', '-r', self.repository,
                 '--host', self.host, '--http-port', str(self.http_port),
                 '--grpc-port', str(self.grpc_port),
                 '--metrics-port', str(self.metrics_port),
                 '--workdir', str(self.workdir), '--poll', str(self.poll)]
        pinned = ['taskset', '-c', str(self.core), *serve]
        if self.namespace:
            return ['ip', 'netns', 'exec', self.namespace, *pinned]
        return pinned

    def start(self, timeout: float = 180) -> 'Replica':
        """Start (or start again, after a kill) and wait until ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / 'serve.log', 'ab')
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **CREDENTIALS}, cwd=paths.ROOT,
            start_new_session=True)
        log.close()
        wait_http(f'http://{self.host}:{self.http_port}/v2/health/ready',
                  timeout, self.process, f'replica {self.index}')
        return self

    def descendants(self) -> list:
        """The launcher's descendants: tritonserver runs in a process group
        of its own, its Python stubs under it."""
        import psutil
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the whole replica, as a node failure would."""
        if self.process is not None and self.process.poll() is None:
            tree = self.descendants()
            self.process.kill()
            self.process.wait()
            _kill_all(tree)

    def stop(self) -> None:
        """SIGTERM (the launcher stops its server), then nothing left."""
        if self.process is not None and self.process.poll() is None:
            tree = self.descendants()
            stop_group(self.process)
            _kill_all(tree)


def _kill_all(processes: list) -> None:
    import psutil
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=10)
