"""A child process's life: the ports it binds, stopping it and everything it
started, SIGTERM as Ctrl-C, waiting until something it serves is ready, and
the memory it and its descendants hold."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Callable, Optional

POLL_S = 0.25  # how often a wait looks again


def free_port() -> int:
    """A port nothing on this host listens on now (the caller binds it
    soon; a test or tool's own server, never a fixed port)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_until(ready: Callable[[], bool], timeout: float,
               gone: Callable[[], bool] = lambda: False) -> bool:
    """Ask ``ready`` every POLL_S seconds until it says yes (True) or
    ``timeout`` seconds pass or ``gone`` says the thing waited for has
    ended (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone():
            return False
        if ready():
            return True
        time.sleep(POLL_S)
    return False


def resident_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (a server with
    its Python stubs), in MiB to a tenth."""
    import psutil
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    return round(sum(p.memory_info().rss for p in procs) / 2**20, 1)


def stop_group(process: Optional[subprocess.Popen],
               timeout: float = 30) -> Optional[int]:
    """SIGTERM the process group of ``process`` (started with
    ``start_new_session``), SIGKILL what is left of it after ``timeout``,
    whether or not its leader is still running; the leader's exit code."""
    if process is None:
        return None
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return process.wait()


def interrupt_on_sigterm() -> None:
    """SIGTERM (a container's stop, ``timeout``, ``kill``) unwinds like
    Ctrl-C, so the ``with`` blocks and ``finally`` clauses that stop servers,
    their stubs, nginx and network namespaces run. Left to its default,
    SIGTERM ends Python at once, and a server started in a session of its
    own runs on, holding its ports. Each program calls it (main thread)."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def exit_reason(code: int) -> str:
    """A Popen return code in words: a negative one is the killing signal."""
    if code < 0:
        return f'was killed by {signal.Signals(-code).name}'
    return f'exited with code {code}'
