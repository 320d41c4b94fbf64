"""The process layout of a Kubernetes deployment, run for real on one
machine: an S3-compatible store holding the model repository (``s3``),
replicas of ``python -m serve`` reading it, each pinned to its own CPU core
and, where root allows, in its own network namespace (``replica``,
``netns``), and nginx balancing gRPC and HTTP over them (``nginx``).
``python -m tools.cluster`` (``make cluster``) runs it until Ctrl-C.
"""
from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

from .errors import ClusterError
from .netns import Namespaces, namespaces_possible
from .nginx import TlsFront, nginx
from .replica import Replica
from .s3 import BUCKET, aws_environment, s3_server

__all__ = ['Cluster', 'ClusterError', 'cluster']


@dataclass
class Cluster:
    repository: str           # s3:// as seen from this host
    replicas: List[Replica]
    grpc_url: str
    http_url: str
    s3: str                   # host:port of the S3 server, from this host


@contextmanager
def cluster(workdir: Path, replicas: int = 2, prefix: str = 'repo',
            namespaces: Optional[bool] = None, poll: float = 2.0,
            publish=None, tls: Optional[TlsFront] = None) -> Iterator[Cluster]:
    """The whole stand-in. ``publish(repository_url)`` is called once the S3
    server is up (an export, typically) before the replicas start; ``tls``
    makes nginx's ports TLS only."""
    workdir = workdir.resolve()  # nginx and the replicas run elsewhere
    workdir.mkdir(parents=True, exist_ok=True)
    isolated = namespaces_possible() if namespaces is None else namespaces
    cpus = sorted(os.sched_getaffinity(0))
    with ExitStack() as stack:
        stack.enter_context(aws_environment())
        net = Namespaces()
        stack.callback(net.remove)
        s3 = stack.enter_context(s3_server(workdir, '0.0.0.0' if isolated
                                           else '127.0.0.1'))
        port = s3.rsplit(':', 1)[1]
        repository = f's3://{s3}/{BUCKET}/{prefix}'
        if publish is not None:
            publish(repository)
        members = []
        for i in range(replicas):
            core, work = cpus[i % len(cpus)], workdir / f'replica-{i}'
            if isolated:
                name, here, there = net.add(i)
                replica = Replica(i, there, f'{here}:{port}', core, work, name)
            else:
                replica = Replica(i, '127.0.0.1', s3, core, work)
            replica.repository = f's3://{replica.store_host}/{BUCKET}/{prefix}'
            replica.poll = poll
            stack.callback(replica.stop)
            members.append(replica.start())
        grpc_port, http_port = stack.enter_context(
            nginx(members, workdir, tls=tls))
        yield Cluster(repository, members, f'127.0.0.1:{grpc_port}',
                      f'127.0.0.1:{http_port}', s3)
