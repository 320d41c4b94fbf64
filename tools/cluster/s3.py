"""An S3-compatible store (moto's server) holding the model repository, and
the credentials the stand-in gives everything that reaches it."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from ground.process import free_port, stop_group

from .errors import wait_http

CREDENTIALS = {'AWS_ACCESS_KEY_ID': 'frcnn', 'AWS_SECRET_ACCESS_KEY': 'frcnn-local',
               'AWS_DEFAULT_REGION': 'us-east-1'}
BUCKET = 'models'


@contextmanager
def aws_environment() -> Iterator[None]:
    """The stand-in's credentials in this process's environment (for the
    export and the store checks), restored after."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def s3_server(workdir: Path, host: str = '127.0.0.1',
              bucket: Optional[str] = BUCKET, checks_keys: bool = False
              ) -> Iterator[str]:
    """moto's S3 server, with ``bucket`` made; yields ``host:port``.
    ``checks_keys``: refuse every key it has not issued (moto accepts any
    by default), as a store refuses bad credentials."""
    port = free_port()
    log = open(workdir / f's3-{port}.log', 'wb')
    env = {**os.environ, **({'INITIAL_NO_AUTH_ACTION_COUNT': '0'}
                            if checks_keys else {})}
    process = subprocess.Popen(
        [sys.executable, '-m', 'moto.server', '-H', host, '-p', str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        address = f'{"127.0.0.1" if host == "0.0.0.0" else host}:{port}'
        wait_http(f'http://{address}/moto-api/', 30, process, 'S3 server')
        if bucket:
            import boto3
            with aws_environment():
                boto3.client('s3', endpoint_url=f'http://{address}'
                             ).create_bucket(Bucket=bucket)
        yield address
    finally:
        stop_group(process)
        log.close()
