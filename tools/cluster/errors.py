"""How the stand-in's parts fail and how it waits for them."""
from __future__ import annotations

import socket
import subprocess
import urllib.request
from typing import Callable, Optional

from ground.cli import Failure
from ground.process import wait_until


class ClusterError(Failure, RuntimeError):
    """A part of the stand-in could not be started."""


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def listening(host: str, port: int) -> bool:
    """Accepts a connection: readiness of a TLS port, whose handshake may
    ask for a client certificate that a probe does not hold."""
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def wait_http(url: str, timeout: float, process: subprocess.Popen,
              what: str, ready: Optional[Callable[[], bool]] = None) -> None:
    """Until ``url`` answers 200 (or ``ready()`` says so), ``process`` is
    still running and ``timeout`` has not passed."""
    if wait_until(ready or (lambda: answers(url)), timeout,
                  gone=lambda: process.poll() is not None):
        return
    if process.poll() is not None:
        raise ClusterError(f'{what} exited with code {process.returncode}')
    raise ClusterError(f'{what} not ready at {url} after {timeout:.0f} s')
