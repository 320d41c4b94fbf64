"""``AsyncTritonDetector``: the asyncio API, for many images at once.

    async with await AsyncTritonDetector.connect('localhost:8001') as det:
        results = await det.detect_many(paths, concurrency=8)

One gRPC channel (``tritonclient.grpc.aio``) carries every request; the
server's dynamic batcher groups those that arrive together. Same model spec,
wire contract and retry policy as the threaded ``TritonDetector``.
"""
from __future__ import annotations

import asyncio
from typing import Iterable, List, Optional

from ..wire import Detections
from .images import ImageLike, encode
from .protocol import (POLL_S, ModelSpec, ReadyWait, Tls, first_line, library,
                       readiness)
from .retry import Retry


class AsyncTritonDetector:

    def __init__(self, client, spec: ModelSpec, url: str, timeout: float,
                 retry: Retry):
        """Use ``connect``: it waits for readiness and learns the model."""
        self._client, self.spec, self.url = client, spec, url
        self.timeout, self.retry = timeout, retry
        self._lib = library('grpc')  # InferInput and friends live here

    @classmethod
    async def connect(cls, url: str = 'localhost:8001',
                      model: str = 'faster_rcnn', model_version: str = '',
                      timeout: float = 60.0, wait: float = 10.0,
                      retry: Optional[Retry] = None,
                      verbose: bool = False, tls: Optional[Tls] = None
                      ) -> 'AsyncTritonDetector':
        client = library('grpc.aio').InferenceServerClient(
            url, verbose, **(tls.options('grpc') if tls else {}))
        version = str(model_version)
        try:
            await _wait_until_ready(client, url, model, version, wait)
            spec = ModelSpec.learn(
                model, version,
                await client.get_model_metadata(model, version, as_json=True),
                await client.get_model_config(model, version, as_json=True))
        except BaseException:
            await client.close()
            raise
        return cls(client, spec, url, timeout, retry or Retry(retries=0))

    @property
    def client(self):
        """The ``tritonclient.grpc.aio`` client, for what this class does
        not wrap (statistics, metadata of other models)."""
        return self._client

    async def infer_bytes(self, data: bytes) -> Detections:
        attempt = 0
        while True:
            try:
                result = await self._client.infer(
                    self.spec.name, self.spec.inputs(self._lib, data),
                    model_version=self.spec.version,
                    outputs=self.spec.outputs(self._lib),
                    client_timeout=self.timeout)
                return self.spec.detections(result)
            except Exception as exc:  # tritonclient raises several types
                await asyncio.sleep(self.retry.delay(attempt, exc))
                attempt += 1

    async def __call__(self, image: ImageLike) -> Detections:
        return await self.infer_bytes(encode(image))

    async def detect_many(self, images: Iterable[ImageLike],
                          concurrency: int = 8) -> List[Detections]:
        """Every image's detections, in order, ``concurrency`` in flight;
        the first failure (after retries) is raised."""
        gate = asyncio.Semaphore(concurrency)

        async def one(image: ImageLike) -> Detections:
            async with gate:
                return await self(image)
        return list(await asyncio.gather(*(one(i) for i in images)))

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> 'AsyncTritonDetector':
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


async def _wait_until_ready(client, url: str, model: str, version: str,
                            wait: float) -> None:
    waiting = ReadyWait(url, 'grpc.aio', wait)
    while waiting.again(await _unready(client, model, version)):
        await asyncio.sleep(POLL_S)


async def _unready(client, model: str, version: str) -> Optional[str]:
    """The first readiness check that fails, or None."""
    try:
        for method, args, message in readiness(model, version):
            if not await getattr(client, method)(*args):
                return message
        return None
    except Exception as exc:  # tritonclient and sockets raise several
        return first_line(exc)
