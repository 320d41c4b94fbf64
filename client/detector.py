"""``TritonDetector``: the served model, called like mmdet's ``inference_detector``.

    det = TritonDetector('localhost:8001', 'faster_rcnn')
    result = det('demo.jpg')
    det.show_result('demo.jpg', result, out_file='result.jpg')

It sends encoded bytes (the server decodes, resizes and normalises exactly as
the mmdet config says) and gets boxes in original-image pixels back.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Optional, Union

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from detection.postprocess import Detections

from .draw import draw_detections, load_image

DEFAULT_URLS = {'grpc': 'localhost:8001', 'http': 'localhost:8000'}
INPUT = 'IMAGE'
OUTPUTS = ('BOXES', 'SCORES', 'CLASSES', 'CLASS_NAMES', 'NUM_DETECTIONS')

ImageLike = Union[str, Path, bytes]


class ServerUnavailable(ConnectionError):
    """The server or the model could not be reached or is not ready."""


TRANSIENT_STATUS = ('StatusCode.UNAVAILABLE', 'StatusCode.DEADLINE_EXCEEDED',
                    'StatusCode.CANCELLED', '503', '504')
# A server that restarts answers for a moment before its models are back.
TRANSIENT_MESSAGES = ('failed to connect', 'no available versions',
                      'is not ready', 'connection refused')


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the server is gone, restarting or overloaded. A bad
    image or a bad request is not: it would fail the same way again."""
    if isinstance(exc, (ConnectionError, OSError, TimeoutError)):
        return True
    if isinstance(exc, InferenceServerException):
        message = str(exc).lower()
        return (str(exc.status()) in TRANSIENT_STATUS
                or any(m in message for m in TRANSIENT_MESSAGES))
    return False


class TritonDetector:

    def __init__(self, url: Optional[str] = None, model: str = 'faster_rcnn',
                 protocol: str = 'grpc', timeout: float = 60.0,
                 wait: float = 10.0, retries: int = 0,
                 backoff: float = 0.5, verbose: bool = False):
        if protocol not in DEFAULT_URLS:
            raise ValueError(f'protocol must be grpc or http, not {protocol!r}')
        self.url = url or DEFAULT_URLS[protocol]
        self.model = model
        self.protocol = protocol
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.verbose = verbose
        self._lib = grpcclient if protocol == 'grpc' else httpclient
        self._local = threading.local()
        self._clients = []
        self._lock = threading.Lock()
        self.wait_until_ready(wait)
        self._check_metadata()

    @property
    def client(self):
        """This thread's connection: the HTTP client (gevent) must not be
        shared across threads, so each thread that sends gets its own."""
        client = getattr(self._local, 'client', None)
        if client is None:
            if self.protocol == 'grpc':
                client = grpcclient.InferenceServerClient(self.url, self.verbose)
            else:
                client = httpclient.InferenceServerClient(
                    self.url, self.verbose, connection_timeout=self.timeout,
                    network_timeout=self.timeout)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def wait_until_ready(self, wait: float) -> None:
        """Poll server liveness, readiness and model readiness, as Triton's
        client examples do before sending anything."""
        deadline = time.monotonic() + wait
        last = 'no answer'
        while True:
            try:
                if not self.client.is_server_live():
                    last = 'server not live'
                elif not self.client.is_server_ready():
                    last = 'server not ready'
                elif not self.client.is_model_ready(self.model):
                    last = f'model {self.model!r} not ready'
                else:
                    return
            except (InferenceServerException, OSError) as exc:
                last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if time.monotonic() >= deadline:
                raise ServerUnavailable(
                    f'cannot use Triton at {self.url} ({self.protocol}): '
                    f'{last} after {wait:.0f} s')
            time.sleep(0.25)

    def _check_metadata(self) -> None:
        meta = self.client.get_model_metadata(self.model)
        if self.protocol == 'grpc':
            inputs = [i.name for i in meta.inputs]
            outputs = [o.name for o in meta.outputs]
        else:
            inputs = [i['name'] for i in meta['inputs']]
            outputs = [o['name'] for o in meta['outputs']]
        missing = [n for n in OUTPUTS if n not in outputs]
        if INPUT not in inputs or missing:
            raise ServerUnavailable(
                f'model {self.model!r} is not a detection ensemble (inputs '
                f'{inputs}, outputs {outputs}); expected {INPUT} -> {OUTPUTS}')

    def infer_bytes(self, data: bytes) -> Detections:
        """One encoded image in, its detections (all the server returns).

        Transient failures are retried ``retries`` times, waiting
        ``backoff * 2**attempt`` seconds between tries."""
        attempt = 0
        while True:
            try:
                return self._infer_once(data)
            except Exception as exc:  # tritonclient raises several types
                if attempt >= self.retries or not is_transient(exc):
                    raise
                time.sleep(self.backoff * 2 ** attempt)
                attempt += 1

    def _infer_once(self, data: bytes) -> Detections:
        image = self._lib.InferInput(INPUT, [1, 1], 'BYTES')
        image.set_data_from_numpy(np.array([[data]], dtype=object))
        outputs = [self._lib.InferRequestedOutput(n) for n in OUTPUTS]
        if self.protocol == 'grpc':
            result = self.client.infer(self.model, [image], outputs=outputs,
                                       client_timeout=self.timeout)
        else:
            result = self.client.infer(self.model, [image], outputs=outputs)
        n = int(result.as_numpy('NUM_DETECTIONS')[0, 0])
        names = result.as_numpy('CLASS_NAMES')[0, :n]
        return Detections(
            boxes=result.as_numpy('BOXES')[0, :n].astype(np.float32),
            scores=result.as_numpy('SCORES')[0, :n].astype(np.float32),
            labels=result.as_numpy('CLASSES')[0, :n].astype(np.int64),
            names=np.array([x.decode() if isinstance(x, bytes) else str(x)
                            for x in names], dtype=object))

    def __call__(self, image: ImageLike) -> Detections:
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        return self.infer_bytes(data)

    def show_result(self, image: ImageLike, result: Detections,
                    out_file: Optional[Union[str, Path]] = None,
                    score_thr: float = 0.3):
        """Draw ``result`` on ``image``; save to ``out_file`` if given.
        Returns the annotated PIL image."""
        from .output import write_atomic
        drawn = draw_detections(load_image(image), result, score_thr)
        if out_file is not None:
            write_atomic(Path(out_file), lambda f: drawn.save(f, 'JPEG', quality=92))
        return drawn

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()

    def __enter__(self) -> 'TritonDetector':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
