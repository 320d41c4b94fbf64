"""Which failures are worth another try, how long to wait, and how many
there were.

A server that is restarting, unreachable or over its queue cap will likely
answer a moment later; a bad image or a bad request would fail the same way
again. Waits grow exponentially with "equal jitter": half the bound for
sure, the other half at random, so that many clients refused together do not
all come back at once, yet a run of retries always spans a known time.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from .protocol import first_line

# gRPC status names and HTTP codes as tritonclient reports them
BUSY_STATUS = ('StatusCode.UNAVAILABLE', 'StatusCode.RESOURCE_EXHAUSTED',
               '503', '429')
TRANSIENT_STATUS = BUSY_STATUS + ('StatusCode.DEADLINE_EXCEEDED',
                                  'StatusCode.CANCELLED', '504')
# Triton's own words when it refuses for load (its queue is full, or the
# request waited longer than the queue policy allows), and a server that
# restarts answers for a moment before its models are back.
BUSY_MESSAGES = ('maximum queue size', 'server busy', 'queue is full',
                 'request timeout')
TRANSIENT_MESSAGES = ('failed to connect', 'no available versions',
                      'is not ready', 'connection refused', 'socket closed',
                      'connection reset')


class ServerBusy(RuntimeError):
    """The server refused the request for load, and no retries were left."""


def _status(exc: BaseException) -> str:
    status = getattr(exc, 'status', None)
    return str(status() if callable(status) else status or '')


def is_busy(exc: BaseException) -> bool:
    """Refused for load: the server is up, its queue is full."""
    message = str(exc).lower()
    return any(m in message for m in BUSY_MESSAGES) or (
        _status(exc) in ('StatusCode.RESOURCE_EXHAUSTED', '429'))


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the server is gone, restarting or overloaded."""
    if isinstance(exc, (ConnectionError, OSError, TimeoutError)):
        return True
    message = str(exc).lower()
    return (is_busy(exc) or _status(exc) in TRANSIENT_STATUS
            or any(m in message for m in TRANSIENT_MESSAGES))


@dataclass
class Retry:
    """``retries`` more tries after the first; before try n the wait is
    random in [b/2, b] seconds, b = min(max_delay, backoff * 2**n)."""
    retries: int = 2
    backoff: float = 0.5
    max_delay: float = 10.0
    retried: int = 0  # tries after a transient failure, all requests
    busy: int = 0     # refusals for load seen, retried or not
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                  compare=False)

    def delay(self, attempt: int, exc: BaseException) -> float:
        """The wait before another try after ``exc`` failed try ``attempt``
        (from 0); counts what it sees. Where ``exc`` ends the request (not
        transient, or no retries left) it is raised instead: a refusal for
        load as ``ServerBusy``, saying so plainly, anything else as it came.
        The blocking and the asyncio client share this; each sleeps its
        own way."""
        with self._lock:
            self.busy += is_busy(exc)
            ends = attempt >= self.retries or not is_transient(exc)
            self.retried += not ends
        if ends and is_busy(exc):
            raise ServerBusy(f'server busy: refused for load after {attempt} '
                             f'retries ({first_line(exc)})') from None
        if ends:
            raise exc from None
        bound = min(self.max_delay, self.backoff * 2 ** attempt)
        return random.uniform(bound / 2, bound)

    def summary(self) -> str:
        return (f'{self.retried} retries; {self.busy} "server busy" refusals'
                if self.retried or self.busy else '')
