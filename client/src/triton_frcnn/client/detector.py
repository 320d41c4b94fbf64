"""``TritonDetector``: the served model, called like mmdet's ``inference_detector``.

    det = TritonDetector('localhost:8001', 'faster_rcnn')
    result = det('demo.jpg')            # a path, encoded bytes or a BGR array
    det.show_result('demo.jpg', result, out_file='result.jpg')

It sends encoded bytes (the server decodes, resizes and normalises exactly as
the mmdet config says) and gets boxes in original-image pixels back.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Mapping, Optional, Union

from ..wire import Detections
from .images import ImageLike, encode
from .output import save_drawing
from .protocol import (DEFAULT_URLS, POLL_S, ModelSpec, ReadyWait,
                       ServerUnavailable, Tls,
                       first_line, library, readiness, request_headers,
                       unready)
from .retry import Retry


class TritonDetector:
    """One model on one server; safe to call from many threads."""

    def __init__(self, url: Optional[str] = None, model: str = 'faster_rcnn',
                 protocol: str = 'grpc', model_version: str = '',
                 timeout: float = 60.0, wait: float = 10.0,
                 retry: Optional[Retry] = None, verbose: bool = False,
                 tls: Optional[Tls] = None,
                 headers: Optional[Mapping[str, str]] = None):
        """``headers``: sent with every request, e.g. the key of a server
        that restricts its APIs (``--grpc-restricted-protocol``)."""
        self._lib = library(protocol)
        self._connection = tls.options(protocol) if tls else {}
        self.url = url or DEFAULT_URLS[protocol]
        self.protocol = protocol
        self.timeout = timeout
        self.retry = retry or Retry(retries=0)
        self.verbose = verbose
        self._local = threading.local()
        self._clients: list = []
        self._lock = threading.Lock()
        self.headers = request_headers(headers, protocol)
        self.wait_until_ready(model, str(model_version), wait)
        version = str(model_version)
        try:
            self.spec = ModelSpec.learn(
                model, version,
                self.client.get_model_metadata(model, version, **self._call),
                self.client.get_model_config(model, version, **self._call))
        except ServerUnavailable:
            raise
        except Exception as exc:  # a refusal: restricted, unknown model...
            raise unready(self.url, protocol, first_line(exc)) from None

    @property
    def model(self) -> str:
        return self.spec.name

    @property
    def _call(self) -> dict:
        """What every metadata call takes: the headers, JSON over gRPC."""
        return {'headers': self.headers,
                **({'as_json': True} if self.protocol == 'grpc' else {})}

    @property
    def client(self):
        """This thread's connection: the HTTP client (gevent) must not be
        shared across threads, so each thread that sends gets its own."""
        client = getattr(self._local, 'client', None)
        if client is None:
            timeouts = ({} if self.protocol == 'grpc' else
                        {'connection_timeout': self.timeout,
                         'network_timeout': self.timeout})
            client = self._lib.InferenceServerClient(
                self.url, self.verbose, **timeouts, **self._connection)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def wait_until_ready(self, model: str, version: str, wait: float) -> None:
        """Poll until the server and the model say ready, or ``wait`` ends."""
        waiting = ReadyWait(self.url, self.protocol, wait)
        while waiting.again(self._unready(model, version)):
            time.sleep(POLL_S)

    def _unready(self, model: str, version: str) -> Optional[str]:
        """The first readiness check that fails, or None."""
        try:
            return next((message for method, args, message
                         in readiness(model, version)
                         if not getattr(self.client, method)(
                             *args, headers=self.headers)), None)
        except Exception as exc:  # tritonclient and sockets raise several
            return first_line(exc)

    def infer_bytes(self, data: bytes) -> Detections:
        """One encoded image in, its detections (all the server returns);
        transient failures retried as ``retry`` says."""
        attempt = 0
        while True:
            try:
                return self._infer_once(data)
            except Exception as exc:  # tritonclient raises several types
                time.sleep(self.retry.delay(attempt, exc))
                attempt += 1

    def _infer_once(self, data: bytes) -> Detections:
        timeout = ({'client_timeout': self.timeout}
                   if self.protocol == 'grpc' else {})
        result = self.client.infer(
            self.spec.name, self.spec.inputs(self._lib, data),
            model_version=self.spec.version,
            outputs=self.spec.outputs(self._lib), headers=self.headers,
            **timeout)
        return self.spec.detections(result)

    def __call__(self, image: ImageLike) -> Detections:
        return self.infer_bytes(encode(image))

    def show_result(self, image: ImageLike, result: Detections,
                    out_file: Optional[Union[str, Path]] = None,
                    score_thr: float = 0.3):
        """Draw ``result`` on ``image``, save it as a JPEG at ``out_file`` if
        given (like mmdet's ``show_result``); the annotated PIL image."""
        return save_drawing(image, result, out_file, score_thr)

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()

    def __enter__(self) -> 'TritonDetector':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
