"""The whole product on this machine, for one program's own use: export
(unless up to date), one Triton server on free ports, detectors connected to
it, everything stopped at the end.

What the demo, the evaluation, the benchmark, the soak and the tests need;
they differ only in what they do with it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

from export.pipeline import ensure
from export.request import Request
from ground.engine import Engine
from serve.server import TritonServer
from triton_frcnn.client import TritonDetector


@dataclass
class LocalStack:
    server: TritonServer
    exports: Dict[str, Path] = field(default_factory=dict)  # served name -> version

    @property
    def grpc_url(self) -> str:
        return f'127.0.0.1:{self.server.grpc_port}'

    @property
    def http_url(self) -> str:
        return f'127.0.0.1:{self.server.http_port}'

    def detector(self, model: str = 'faster_rcnn', protocol: str = 'grpc',
                 **kwargs) -> TritonDetector:
        """A client of ``model`` on this server (waits up to 60 s for it)."""
        kwargs.setdefault('wait', 60)
        url = self.grpc_url if protocol == 'grpc' else self.http_url
        return TritonDetector(url, model, protocol, **kwargs)


@contextmanager
def served(repository: Path, requests: Sequence[Request] = (),
           workdir: Optional[Path] = None,
           engine: Optional[Engine] = None) -> Iterator[LocalStack]:
    """Each request exported into ``repository`` unless up to date there,
    then a server on it until the block ends, with ``engine``'s backends
    (the environment's by default). Raises ``ExportError`` or
    ``ServerError`` (one line each) when either cannot be done."""
    exports = {r.served_name: ensure(r) for r in requests}
    server = TritonServer.on_free_ports(
        repository, **({'workdir': workdir} if workdir else {}),
        **({'engine': engine} if engine else {}))
    try:
        server.start()
        yield LocalStack(server, exports)
    finally:
        server.stop()
