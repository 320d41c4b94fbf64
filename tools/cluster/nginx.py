"""nginx in front of the replicas, as an ingress: least-connections
balancing, passive health checks, retries on the next replica, TLS."""
from __future__ import annotations

import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Protocol, Sequence

from ground.process import free_port, stop_group

from .errors import ClusterError, listening, wait_http


class Upstream(Protocol):
    """A Triton server as nginx reaches it: a Replica, or any server."""
    host: str
    grpc_port: int
    http_port: int


@dataclass(frozen=True)
class TlsFront:
    """TLS ended at nginx, as an ingress ends it: nginx's certificate and
    key (PEM) and, for mutual TLS, the CA whose client certificates it
    requires (a client without one is refused)."""
    certificate: Path
    key: Path
    client_ca: Optional[Path] = None

    def directives(self) -> str:
        lines = [f'ssl_certificate {self.certificate.resolve()};',
                 f'ssl_certificate_key {self.key.resolve()};']
        if self.client_ca:
            lines += [f'ssl_client_certificate {self.client_ca.resolve()};',
                      'ssl_verify_client on;']
        return '\n'.join('  ' + line for line in lines)


PER_CLIENT = 16  # requests in flight per client address, as the ingress
NGINX = """worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format upstream '$time_iso8601 "$request" $status $upstream_addr '
                      '$request_time $upstream_response_time';
  access_log {work}/nginx-access.log upstream;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi; uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  # the ingress's limits (deploy/k8s/ingress): a body of at most 64 MiB,
  # at most 16 requests in flight per client address, more answered 503
  client_max_body_size 64m;
  limit_conn_zone $binary_remote_addr zone=per_client:1m;
  limit_conn per_client {per_client};
  limit_conn_status 503;
  # bodies and replies stay in memory: a root nginx's workers run as nobody,
  # who cannot write temporary files under a private (0700) work folder
  client_body_buffer_size 64m; proxy_max_temp_file_size 0;
{tls}
  upstream triton_grpc {{
    least_conn;
{grpc}
    keepalive 16;
  }}
  upstream triton_http {{
    least_conn;
{http}
    keepalive 16;
  }}
  server {{
    listen {host}:{grpc_port} {ssl} http2;
    location / {{
      grpc_pass grpc://triton_grpc;
      grpc_read_timeout 600s;
      grpc_next_upstream error timeout;
    }}
  }}
  server {{
    listen {host}:{http_port} {ssl};
    location / {{
      proxy_pass http://triton_http;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 600s;
      proxy_next_upstream error timeout http_502;
    }}
  }}
}}
"""


@contextmanager
def nginx(replicas: Sequence[Upstream], workdir: Path, host: str = '127.0.0.1',
          tls: Optional[TlsFront] = None) -> Iterator[tuple]:
    """nginx over the replicas; yields (gRPC port, HTTP port). Requests go
    to the replica with the fewest in flight (round robin starves the others
    behind a replica that falls behind: docs/performance.md, "Scaling out"),
    over kept-alive connections. A replica that fails a request is marked
    down for 5 s (``max_fails=1``); the request goes to the next one. With
    ``tls``, both ports speak only TLS (HTTPS and gRPC over TLS)."""
    binary = shutil.which('nginx') or '/usr/sbin/nginx'
    if not Path(binary).exists():
        raise ClusterError('nginx is not installed (apt-get install nginx-light)')
    work = workdir / 'nginx'
    work.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port = free_port(), free_port()

    def upstream(port: str) -> str:
        return '\n'.join(f'    server {r.host}:{getattr(r, port)} max_fails=1 '
                         'fail_timeout=5s;' for r in replicas)
    conf = work / 'nginx.conf'
    conf.write_text(NGINX.format(work=work, per_client=PER_CLIENT,
                                 grpc=upstream('grpc_port'),
                                 http=upstream('http_port'), host=host,
                                 grpc_port=grpc_port, http_port=http_port,
                                 tls=tls.directives() if tls else '',
                                 ssl='ssl' if tls else ''))
    process = subprocess.Popen(
        [binary, '-p', str(work), '-c', str(conf), '-g', 'daemon off;'],
        stdout=subprocess.DEVNULL, stderr=open(work / 'stderr.log', 'wb'),
        start_new_session=True)
    try:
        wait_http(f'http{"s" if tls else ""}://{host}:{http_port}/v2/health/ready',
                  30, process, 'nginx',
                  (lambda: listening(host, http_port)) if tls else None)
        yield grpc_port, http_port
    finally:
        stop_group(process)
