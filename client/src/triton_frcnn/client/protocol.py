"""What the client learns from the server before sending, and the requests
it sends.

As Triton's ``image_client.py`` does, the model's metadata and config say the
input's name, the outputs offered and whether the model takes a batch axis;
the wire contract says which outputs a detector must offer and their
datatypes. tritonclient's gRPC and HTTP modules are imported only when used,
so an install with one of them works for that one.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Dict, List, Optional

import numpy as np

from .. import wire

DEFAULT_URLS = {'grpc': 'localhost:8001', 'http': 'localhost:8000'}
# the prefix Triton's --grpc-restricted-protocol puts before its key's name
GRPC_RESTRICTED = 'triton-grpc-protocol-'
MODULES = {'grpc': 'tritonclient.grpc', 'http': 'tritonclient.http',
           'grpc.aio': 'tritonclient.grpc.aio'}
EXTRAS = {'grpc': 'grpc', 'http': 'http', 'grpc.aio': 'grpc'}


@dataclass(frozen=True)
class Tls:
    """TLS to the server: a proxy that ends it (nginx, an ingress) or
    Triton's own gRPC SSL. PEM files; with no ``root_certificates`` the
    server is checked against gRPC's bundled roots, or for HTTP the
    system's (certifi's where the system has none); a client
    certificate (``certificate_chain`` with its ``private_key``) is for a
    server that asks for one (mutual TLS)."""
    root_certificates: Optional[str] = None
    private_key: Optional[str] = None
    certificate_chain: Optional[str] = None

    def __post_init__(self) -> None:
        if bool(self.private_key) != bool(self.certificate_chain):
            raise ValueError('a client certificate needs both its private key '
                             'and its certificate chain')

    def options(self, protocol: str) -> dict:
        """Keyword arguments of tritonclient's ``InferenceServerClient``."""
        if protocol.startswith('grpc'):
            return {'ssl': True, 'root_certificates': self.root_certificates,
                    'private_key': self.private_key,
                    'certificate_chain': self.certificate_chain}
        ssl_options = {}
        if self.root_certificates:
            ssl_options['ca_certs'] = self.root_certificates
        if self.certificate_chain:
            ssl_options.update(certfile=self.certificate_chain,
                               keyfile=self.private_key)
        return {'ssl': True, 'ssl_options': ssl_options}


def request_headers(headers: Optional[Dict[str, str]],
                    protocol: str) -> Dict[str, str]:
    """The headers sent with every request: as given, and over gRPC each
    also under the name a restricted gRPC API checks (Triton expects
    ``triton-grpc-protocol-<name>`` there, ``<name>`` over HTTP), so that one
    ``-H NAME=KEY`` opens both; gRPC metadata names are lower case."""
    if not protocol.startswith('grpc'):
        return dict(headers or {})
    sent: Dict[str, str] = {}
    for name, value in (headers or {}).items():
        name = name.lower()
        sent[name] = value
        if not name.startswith(GRPC_RESTRICTED):
            sent[GRPC_RESTRICTED + name] = value
    return sent


class ServerUnavailable(ConnectionError):
    """The server or the model could not be reached, is not ready, or is not
    a detector this client can read."""


def library(protocol: str) -> ModuleType:
    """``tritonclient.grpc``, ``.http`` or ``.grpc.aio``, with a one-line
    answer when that part of tritonclient is not installed."""
    if protocol not in MODULES:
        raise ValueError(f'protocol must be grpc or http, not {protocol!r}')
    try:
        return importlib.import_module(MODULES[protocol])
    except ImportError as exc:
        raise ImportError(
            f'{protocol} needs tritonclient[{EXTRAS[protocol]}] ({exc}); '
            f"pip install 'triton-frcnn-client[{EXTRAS[protocol]}]'") from None


# how often a client asks again while it waits for readiness (the client
# installs alone, without the project's ground.process.wait_until)
POLL_S = 0.25


def readiness(model: str, version: str) -> list:
    """The checks Triton's client examples make before sending, in order:
    (client method, its arguments, what to say when it answers no)."""
    named = f'model {model!r}' + (f' version {version}' if version else '')
    return [('is_server_live', (), 'server not live'),
            ('is_server_ready', (), 'server not ready'),
            ('is_model_ready', (model, version), f'{named} not ready')]


def unready(url: str, protocol: str, last: str,
            wait: Optional[float] = None) -> ServerUnavailable:
    """Not ready after ``wait`` seconds, or (no ``wait``) refused at once."""
    after = f' after {wait:.0f} s' if wait is not None else ''
    return ServerUnavailable(f'cannot use Triton at {url} ({protocol}): '
                             f'{last}{after}')


class ReadyWait:
    """The wait for readiness without its I/O: the blocking and the asyncio
    client each make the checks and the sleeps, this keeps the deadline and
    the reason to give when it passes."""

    def __init__(self, url: str, protocol: str, wait: float):
        self.url, self.protocol, self.wait = url, protocol, wait
        self.deadline = time.monotonic() + wait

    def again(self, why: Optional[str]) -> bool:
        """Whether to check again after ``POLL_S``, given the first check
        that failed (None: all passed); past the deadline, ``unready``."""
        if why is None:
            return False
        if time.monotonic() >= self.deadline:
            raise unready(self.url, self.protocol, why, self.wait)
        return True


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class ModelSpec:
    """The served model as this client will call it."""
    name: str
    version: str          # '' for the server's choice
    input: str            # the one BYTES input: encoded images
    max_batch_size: int   # 0: no batch axis on inputs and outputs

    @classmethod
    def learn(cls, name: str, version: str, metadata: dict,
              config: dict) -> 'ModelSpec':
        """From ``as_json`` metadata and config (gRPC and HTTP shapes both);
        refuses a model that does not speak the wire contract."""
        config = config.get('config', config)
        inputs = {i['name']: i['datatype'] for i in metadata.get('inputs', [])}
        outputs = {o['name']: o['datatype'] for o in metadata.get('outputs', [])}
        images = [n for n, dtype in inputs.items() if dtype == wire.IMAGE.datatype]
        wrong = [f'{t.name} ({outputs.get(t.name, "missing")}, expected '
                 f'{t.datatype})' for t in wire.OUTPUTS
                 if outputs.get(t.name) != t.datatype]
        if len(inputs) != 1 or len(images) != 1 or wrong:
            raise ServerUnavailable(
                f'model {name!r} is not a detection ensemble: inputs '
                f'{inputs or "none"}, outputs {", ".join(wrong) or "as expected"}'
                f'; expected one {wire.IMAGE.datatype} input (encoded images) '
                f'-> {", ".join(t.name for t in wire.OUTPUTS)}')
        return cls(name, version, images[0],
                   int(config.get('max_batch_size', 0) or 0))

    @property
    def batch_index(self) -> Optional[int]:
        return 0 if self.max_batch_size > 0 else None

    def inputs(self, lib: ModuleType, payload: bytes) -> list:
        shape: List[int] = [1, 1] if self.max_batch_size > 0 else [1]
        tensor = lib.InferInput(self.input, shape, wire.IMAGE.datatype)
        tensor.set_data_from_numpy(np.array([payload], dtype=object)
                                   .reshape(shape))
        return [tensor]

    def outputs(self, lib: ModuleType) -> list:
        return [lib.InferRequestedOutput(t.name) for t in wire.OUTPUTS]

    def detections(self, result) -> wire.Detections:
        return wire.unpack({t.name: result.as_numpy(t.name)
                            for t in wire.OUTPUTS}, self.batch_index)
