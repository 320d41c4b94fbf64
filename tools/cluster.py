"""python -m tools.cluster (``make cluster``): the process layout of a
Kubernetes deployment, run for real on one machine.

An S3-compatible server (moto) holds the model repository; N replicas of
``python -m serve`` read it through tritonserver's own S3 support, each
pinned to its own CPU core (taskset) and, where root allows, in its own
network namespace, as pods would be; nginx balances gRPC and HTTP over them
with passive health checks (a replica that fails is skipped for a while, and
a request it refused or dropped is passed to the next). Clients use nginx's
ports. Replicas roll newly published versions in (``--poll``). Ctrl-C stops
everything.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Protocol, Sequence

from triton_frcnn.files import not_found

from detection import paths
from serve.server import free_port, interrupt_on_sigterm, stop_group

CREDENTIALS = {'AWS_ACCESS_KEY_ID': 'frcnn', 'AWS_SECRET_ACCESS_KEY': 'frcnn-local',
               'AWS_DEFAULT_REGION': 'us-east-1'}
BUCKET = 'models'


class ClusterError(RuntimeError):
    """A part of the stand-in could not be started."""


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def listening(host: str, port: int) -> bool:
    """Accepts a connection: readiness of a TLS port, whose handshake may
    ask for a client certificate that a probe does not hold."""
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def wait_http(url: str, timeout: float, process: subprocess.Popen,
              what: str, ready: Optional[Callable[[], bool]] = None) -> None:
    """Until ``url`` answers 200 (or ``ready()`` says so), ``process`` is
    still running and ``timeout`` has not passed."""
    ready = ready or (lambda: answers(url))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClusterError(f'{what} exited with code {process.returncode}')
        if ready():
            return
        time.sleep(0.25)
    raise ClusterError(f'{what} not ready at {url} after {timeout:.0f} s')


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


def namespaces_possible() -> bool:
    """Root, and ``ip netns`` works here."""
    if os.geteuid() != 0 or shutil.which('ip') is None:
        return False
    probe = f'frcnn-probe-{os.getpid()}'
    made = subprocess.run(['ip', 'netns', 'add', probe], capture_output=True)
    subprocess.run(['ip', 'netns', 'del', probe], capture_output=True)
    return made.returncode == 0


@dataclass
class Replica:
    """One ``python -m serve`` process: its address as nginx reaches it."""
    index: int
    host: str                 # the replica's address (its namespace's, or loopback)
    store_host: str           # where it reaches the S3 server
    core: int
    workdir: Path
    namespace: Optional[str] = None
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: Optional[subprocess.Popen] = None
    repository: str = ''      # s3://, as this replica reaches the store
    poll: float = 2.0

    def command(self) -> List[str]:
        serve = [sys.executable, '-m', 'serve', '-r', self.repository,
                 '--host', self.host, '--http-port', str(self.http_port),
                 '--grpc-port', str(self.grpc_port),
                 '--metrics-port', str(self.metrics_port),
                 '--workdir', str(self.workdir), '--poll', str(self.poll)]
        pinned = ['taskset', '-c', str(self.core), *serve]
        if self.namespace:
            return ['ip', 'netns', 'exec', self.namespace, *pinned]
        return pinned

    def start(self, timeout: float = 180) -> 'Replica':
        """Start (or start again, after a kill) and wait until ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / 'serve.log', 'ab')
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **CREDENTIALS}, cwd=paths.ROOT,
            start_new_session=True)
        log.close()
        wait_http(f'http://{self.host}:{self.http_port}/v2/health/ready',
                  timeout, self.process, f'replica {self.index}')
        return self

    def descendants(self) -> list:
        """The launcher's descendants: tritonserver runs in a process group
        of its own, its Python stubs under it."""
        import psutil
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the whole replica, as a node failure would."""
        if self.process is not None and self.process.poll() is None:
            tree = self.descendants()
            self.process.kill()
            self.process.wait()
            _kill_all(tree)

    def stop(self) -> None:
        """SIGTERM (the launcher stops its server), then nothing left."""
        if self.process is not None and self.process.poll() is None:
            tree = self.descendants()
            stop_group(self.process)
            _kill_all(tree)


def _kill_all(processes: list) -> None:
    import psutil
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=10)


class Namespaces:
    """A network namespace per replica, joined to this host by a veth pair:
    10.77.<n>.1 here, 10.77.<n>.2 there, n a subnet no interface here uses
    (a namespace outlives its name while a process still runs in it)."""

    def __init__(self):
        self.made: List[str] = []

    @staticmethod
    def free_subnet() -> int:
        shown = subprocess.run(['ip', '-o', '-4', 'addr'], capture_output=True,
                               text=True).stdout
        used = {int(n) for n in re.findall(r'inet 10\.77\.(\d+)\.', shown)}
        return next(n for n in range(256) if n not in used)

    def add(self, index: int) -> tuple:
        subnet = self.free_subnet()
        name, here, there = (f'frcnn-r{index}-{os.getpid()}',
                             f'10.77.{subnet}.1', f'10.77.{subnet}.2')
        link = f'vfr{subnet}-{os.getpid() % 10000}'
        for command in (['ip', 'netns', 'add', name],
                        ['ip', 'link', 'add', link, 'type', 'veth', 'peer',
                         'name', 'eth0', 'netns', name],
                        ['ip', 'addr', 'add', f'{here}/24', 'dev', link],
                        ['ip', 'link', 'set', link, 'up'],
                        ['ip', '-n', name, 'addr', 'add', f'{there}/24', 'dev', 'eth0'],
                        ['ip', '-n', name, 'link', 'set', 'eth0', 'up'],
                        ['ip', '-n', name, 'link', 'set', 'lo', 'up']):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise ClusterError(f'{" ".join(command)}: {done.stderr.strip()}')
            if command[:3] == ['ip', 'netns', 'add']:
                self.made.append(name)
        return name, here, there

    def remove(self) -> None:
        for name in self.made:  # deleting a namespace deletes its veth pair
            subprocess.run(['ip', 'netns', 'del', name], capture_output=True)


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
  client_max_body_size 64m;
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
    conf.write_text(NGINX.format(work=work, grpc=upstream('grpc_port'),
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m tools.cluster', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--replicas', type=int, default=2)
    p.add_argument('-c', '--config', type=Path, default=paths.DEMO_CONFIG)
    p.add_argument('-w', '--checkpoint', type=Path, default=paths.DEMO_CHECKPOINT)
    p.add_argument('-m', '--name', default='faster_rcnn')
    p.add_argument('--workdir', type=Path, default=paths.ROOT / '.cluster')
    p.add_argument('--tls-certificate', type=Path, metavar='PEM',
                   help='nginx serves TLS only, with this certificate')
    p.add_argument('--tls-key', type=Path, metavar='PEM')
    p.add_argument('--tls-client-ca', type=Path, metavar='PEM',
                   help='and requires client certificates signed by this CA')
    args = p.parse_args(argv)
    tls_files = [args.tls_certificate, args.tls_key, args.tls_client_ca]
    if problem := not_found(tls_files):
        p.error(problem)
    if any(tls_files) and not (args.tls_certificate and args.tls_key):
        p.error('TLS needs --tls-certificate and --tls-key')
    tls = TlsFront(*tls_files) if args.tls_certificate else None
    from export.__main__ import setup_logging
    from export.errors import ExportError
    from export.pipeline import Request, run
    setup_logging(verbose=False)
    images = sorted((paths.ROOT / 'data/synthetic/val').glob('*.jpg'))[:4] or \
        sorted(paths.SAMPLES.glob('*.jpg'))

    def publish(repository: str) -> None:
        run(Request(config=args.config, checkpoint=args.checkpoint,
                    images=images, name=args.name, repository=repository,
                    cpus=1))  # each replica has one core
    interrupt_on_sigterm()
    try:
        with cluster(args.workdir, args.replicas, publish=publish,
                     tls=tls) as c:
            print(f'[cluster] S3 repository {c.repository} (credentials: '
                  f'{" ".join(f"{k}={v}" for k, v in CREDENTIALS.items())})')
            for r in c.replicas:
                print(f'[cluster] replica {r.index}: {r.host} gRPC {r.grpc_port} '
                      f'HTTP {r.http_port} on core {r.core}'
                      + (f', namespace {r.namespace}' if r.namespace else ''))
            print(f'[cluster] nginx: gRPC {c.grpc_url}, HTTP {c.http_url}'
                  f'{" (TLS only)" if tls else ""}; try: python -m client -u '
                  f'{c.grpc_url} -m {args.name}{" --ssl" if tls else ""} '
                  'IMAGE; Ctrl-C stops', flush=True)
            while all(r.process.poll() is None for r in c.replicas):
                time.sleep(1)
            print('cluster: error: a replica exited; see its serve.log under '
                  f'{args.workdir}', file=sys.stderr)
            return 1
    except (ClusterError, ExportError) as exc:
        print(f'cluster: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('[cluster] stopped')
        return 0


if __name__ == '__main__':
    sys.exit(main())
