"""Starting, watching and stopping a real ``tritonserver`` on this host.

Hosts without NVIDIA's container run the Triton 2.51 binary bundled in the
nvidia-pytriton wheel, which carries only the Python backend. ``prepare``
assembles a backend directory for it: that Python backend with the stub for
this interpreter, plus this project's Python-based ``onnxruntime`` backend.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

from detection import paths

RUNTIME_BACKEND = Path(__file__).resolve().parent / 'backends' / 'runtime.py'
RUNTIME_BACKENDS = ('onnxruntime', 'openvino')  # names it serves under
# NGC 24.10's ONNX Runtime and OpenVINO, which the stand-in backend runs
# (scripts/setup.sh installs serve/backends/ngc-runtimes.txt there)
NGC_RUNTIMES = Path(sys.prefix) / 'ngc-runtimes'
ADMIN_HEADER = 'triton-admin-key'
# the APIs only requests with the admin key may use, here and in the
# Kubernetes Deployment: model control, and what lets a caller read server
# memory or change what the server records; clients keep inference,
# metadata, model config, health and statistics
RESTRICTED = ('model-repository', 'shared-memory', 'trace', 'logging')
START_ATTEMPTS = 2  # a crash during start-up gets one more start
CPU_HOST_NOISE = 'CudaDriverHelper has not been initialized'  # every start


class ServerError(RuntimeError):
    """The server could not be started or did not become ready."""


@dataclass(frozen=True)
class Installation:
    binary: Path
    python_backend: Path
    stub: Path
    libs: Path

    @classmethod
    def bundled(cls) -> 'Installation':
        # Located, not imported: the package's own code needs dependencies
        # that were deliberately not installed.
        spec = importlib.util.find_spec('pytriton')
        if spec is None or not spec.submodule_search_locations:
            raise ServerError('nvidia-pytriton is not installed; run '
                              '`make setup`')
        base = Path(spec.submodule_search_locations[0]) / 'tritonserver'
        version = f'{sys.version_info.major}.{sys.version_info.minor}'
        found = cls(binary=base / 'bin' / 'tritonserver',
                    python_backend=base / 'backends' / 'python',
                    stub=base / 'python_backend_stubs' / version /
                    'triton_python_backend_stub',
                    libs=base.parent.parent / 'nvidia_pytriton.libs')
        for path in (found.binary, found.python_backend, found.stub):
            if not path.exists():
                raise ServerError(f'bundled Triton is incomplete: {path} is '
                                  'missing')
        return found


def needs_gpu(config) -> bool:
    from tritonclient.grpc import model_config_pb2 as mc
    return config.platform == 'tensorrt_plan' or any(
        g.kind == mc.ModelInstanceGroup.KIND_GPU for g in config.instance_group)


def stop_group(process: Optional[subprocess.Popen],
               timeout: float = 30) -> Optional[int]:
    """SIGTERM the process group of ``process`` (started with
    ``start_new_session``), SIGKILL what is left of it after ``timeout``,
    whether or not its leader is still running; the leader's exit code."""
    if process is None:
        return None
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return process.wait()


def interrupt_on_sigterm() -> None:
    """SIGTERM (a container's stop, ``timeout``, ``kill``) unwinds like
    Ctrl-C, so the ``with`` blocks and ``finally`` clauses that stop servers,
    their stubs, nginx and network namespaces run. Left to its default,
    SIGTERM ends Python at once, and a server started in a session of its
    own runs on, holding its ports. Each program calls it (main thread)."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def exit_reason(code: int) -> str:
    """A Popen return code in words: a negative one is the killing signal."""
    if code < 0:
        return f'was killed by {signal.Signals(-code).name}'
    return f'exited with code {code}'


def runtimes_missing() -> List[str]:
    """One line when the stand-in backend runs this environment's runtimes
    instead of NGC's (a copy of the project without ``make setup``)."""
    if NGC_RUNTIMES.is_dir():
        return []
    return [f'{NGC_RUNTIMES} is missing: the onnxruntime and openvino '
            'backends run this environment\'s versions, not NGC 24.10\'s '
            '(make setup installs them)']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@dataclass
class TritonServer:
    """One ``tritonserver`` process; a context manager that stops it."""
    repository: Union[Path, str]  # a folder, or an s3:// URL tritonserver reads
    host: str = '127.0.0.1'
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    workdir: Path = paths.TRITON_WORKDIR
    log_file: Optional[Path] = None
    extra_args: List[str] = field(default_factory=list)
    # --model-config-name: each model's configs/<name>.pbtxt where it has
    # one (the export's GPU placement is "gpu"), config.pbtxt elsewhere
    config_name: str = ''
    process: Optional[subprocess.Popen] = None
    # Model loading is explicit so that a broken version can be skipped, and
    # the repository API answers only requests carrying this per-process key:
    # nobody else can load or unload models.
    admin_key: str = field(default_factory=lambda: secrets.token_hex(16))
    report: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)  # need a GPU, none here

    @classmethod
    def on_free_ports(cls, repository: Union[Path, str],
                      **kwargs) -> 'TritonServer':
        """A server for one program's own use (demo, eval, bench, tests)."""
        return cls(repository, http_port=free_port(), grpc_port=free_port(),
                   metrics_port=free_port(), **kwargs)

    def prepare(self, install: Installation) -> Path:
        """The backend directory: bundled Python backend + our onnxruntime
        and openvino (one file, serve/backends/runtime.py).

        Files are copied, not linked: Triton refuses a backend library whose
        real path lies outside the backend directory.
        """
        backends = self.workdir / 'backends'
        files = {backends / 'python' / p.name: p
                 for p in install.python_backend.iterdir()
                 if p.suffix in ('.so', '.py')}
        files[backends / 'python' / 'triton_python_backend_stub'] = install.stub
        for name in RUNTIME_BACKENDS:
            files[backends / name / 'model.py'] = RUNTIME_BACKEND
        for copy, source in files.items():
            if not copy.exists() or copy.read_bytes() != source.read_bytes():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, copy)
        return backends

    def command(self, install: Installation, backends: Path) -> List[str]:
        load = (['--load-model=*'] if not self.skipped else
                [f'--load-model={m}' for m in self.store.models()
                 if m not in self.skipped])
        return [
            str(install.binary),
            f'--model-repository={self.location}',
            f'--backend-directory={backends.resolve()}',
            '--model-control-mode=explicit', *load,
            '--exit-on-error=false', '--strict-readiness=false',
            f'--grpc-restricted-protocol={self.restriction}',
            f'--http-restricted-api={self.restriction}',
            f'--http-address={self.host}', f'--http-port={self.http_port}',
            f'--grpc-address={self.host}', f'--grpc-port={self.grpc_port}',
            f'--metrics-address={self.host}',
            f'--metrics-port={self.metrics_port}',
            '--log-verbose=0',
            *([f'--model-config-name={self.config_name}']
              if self.config_name else []), *self.extra_args]

    @property
    def restriction(self) -> str:
        """The value of Triton's ``--*-restricted-*`` flags."""
        return f'{",".join(RESTRICTED)}:{ADMIN_HEADER}={self.admin_key}'

    def environment(self, install: Installation) -> dict:
        """The stub embeds this interpreter: it must find its libpython and
        this environment's packages (numpy, opencv, onnxruntime). It runs
        Python isolated (PYTHONPATH is ignored) and takes ``python3`` on PATH
        as its executable, so this environment's bin/ goes first on PATH."""
        env = dict(os.environ)
        env['PATH'] = os.pathsep.join((str(Path(sys.executable).parent),
                                       env.get('PATH', '')))
        libdirs = [sysconfig.get_config_var('LIBDIR'), str(install.libs),
                   env.get('LD_LIBRARY_PATH', '')]
        env['LD_LIBRARY_PATH'] = ':'.join(p for p in libdirs if p)
        if NGC_RUNTIMES.is_dir():
            env['TRITON_FRCNN_RUNTIMES'] = str(NGC_RUNTIMES)
        return env

    @property
    def ready_url(self) -> str:
        return f'http://{self.host}:{self.http_port}/v2/health/ready'

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 180) -> 'TritonServer':
        """Start, wait until ready and serve what loads (``report`` says
        what did not).

        A server killed by a signal during start-up is started once more:
        Triton 2.51 now and then crashes (SIGSEGV) while it unloads the good
        versions of a model whose other version failed, as other models
        load. One that exits with a code is not: its next start would fail
        the same way."""
        self.check_repository()
        self.check_placement()
        gpu_models = self.leave_out_gpu_models()
        install = Installation.bundled()
        crashes: List[str] = []
        while True:
            code = self._launch(install, timeout, again=bool(crashes))
            if code is None:
                self.report = (gpu_models + crashes + self.recover()
                               + runtimes_missing())
                return self
            died = (f'tritonserver {exit_reason(code)} during start-up: '
                    f'{self.last_error()} (log: {self.log_file})')
            if code >= 0 or len(crashes) + 1 == START_ATTEMPTS:
                raise ServerError(died + (f' (started {len(crashes) + 1} '
                                          'times)' if crashes else ''))
            crashes.append(f'{died}; started it again')

    def _launch(self, install: Installation, timeout: float,
                again: bool) -> Optional[int]:
        """One start of the process: None once ready, else its exit code.
        A start ``again`` appends to the log, keeping the crash's lines."""
        self.stop()  # a previous run's stubs, if that server was killed
        backends = self.prepare(install)
        self.log_file = self.log_file or self.workdir / 'server.log'
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, 'ab' if again else 'wb') as log:
            if again:
                log.write(b'--- started again after a crash ---\n')
                log.flush()
            self.process = subprocess.Popen(
                self.command(install, backends), stdout=log,
                stderr=subprocess.STDOUT, env=self.environment(install),
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return self.process.returncode
            if self.is_ready():
                return None
            time.sleep(0.25)
        self.stop()
        raise ServerError(f'tritonserver not ready after {timeout:.0f} s '
                          f'(log: {self.log_file})')

    def _admin(self):
        import tritonclient.http as httpclient
        return httpclient.InferenceServerClient(
            f'{self.host}:{self.http_port}', network_timeout=600.0)

    def recover(self) -> List[str]:
        """Serve what can be served; return one line per problem.

        Triton fails a whole model when one of its versions fails to load.
        Here a model with a broken version is loaded again limited to its
        other versions, and models that depend on it (the ensemble) after it;
        an ensemble whose pinned version is gone falls back as a whole.
        """
        headers = {ADMIN_HEADER: self.admin_key}
        admin = self._admin()
        try:
            broken: dict = {}
            for entry in admin.get_model_repository_index(headers=headers):
                if (entry.get('state') == 'UNAVAILABLE' and entry.get('version')
                        and self._config(entry['name']).platform != 'ensemble'):
                    reason = (entry.get('reason') or 'unknown').strip()
                    if reason == 'unloaded':  # good, taken down with a bad one
                        continue
                    broken.setdefault(entry['name'], {})[int(entry['version'])] = \
                        reason.splitlines()[0]
            lines = []
            for name, failed in broken.items():
                for version, reason in sorted(failed.items()):
                    lines.append(f'model {name} version {version} failed to '
                                 f'load: {reason}')
                good = [v for v in self._listed(name) if v not in failed]
                if good:
                    self._load(admin, name, versions=good)
                    lines.append(f'model {name}: serving version(s) {good}')
            for entry in admin.get_model_repository_index(headers=headers):
                if (entry.get('state') != 'READY' and entry['name'] not in broken
                        and entry['name'] not in self.skipped):
                    try:
                        self._load(admin, entry['name'])
                    except Exception as exc:  # tritonclient's own types
                        lines.append(self._fall_back(admin, entry['name'],
                                                     broken, exc))
            return lines
        finally:
            admin.close()

    @property
    def location(self) -> str:
        """The repository as tritonserver takes it: an absolute path, or
        the s3:// URL as given."""
        from export.store import is_s3
        return (str(self.repository) if is_s3(self.repository)
                else str(Path(self.repository).resolve()))

    @functools.cached_property
    def store(self):
        """The repository's versions and configs, read as the server sees them."""
        from export.store import open_store
        return open_store(self.repository)

    def check_repository(self) -> None:
        from export.errors import ExportError
        from export.store import is_s3
        if is_s3(self.repository):
            try:
                self.store.check()
            except ExportError as exc:
                raise ServerError(str(exc)) from None
        elif not Path(self.repository).is_dir():
            raise ServerError(f'model repository not found: {self.repository} '
                              '(run `make export` first)')

    def check_placement(self) -> None:
        """A named placement must exist, and one that puts a model on a GPU
        needs a GPU here: asked for by name, it is refused rather than
        partly served."""
        if not self.config_name:
            return
        from export.device import visible_gpus
        from export.triton_config import parse
        placed = {m: text for m in self.store.models()
                  if (text := self.store.read(m, self.named_config))}
        if not placed:
            raise ServerError(f'--model-config-name {self.config_name}: no '
                              f'model in {self.repository} has '
                              f'{self.named_config}')
        gpu = [m for m, text in placed.items() if needs_gpu(parse(text))]
        if gpu and visible_gpus() == 0:
            raise ServerError(
                f'no GPU on this host: --model-config-name '
                f'{self.config_name} places {", ".join(gpu)} on a GPU '
                '(serve without it for the CPU placement)')

    def leave_out_gpu_models(self) -> List[str]:
        """On a host with no GPU, a model for one (KIND_GPU, a TensorRT
        plan) is not loaded, nor the ensembles that run it; the others are
        served. One line if any was left out."""
        from export.device import visible_gpus
        configs = {m: self._config(m) for m in self.store.models()}
        gpu = {m for m, c in configs.items() if needs_gpu(c)}
        if not gpu or visible_gpus() > 0:
            self.skipped = []
            return []
        ensembles = {m for m, c in configs.items()
                     if {s.model_name for s in c.ensemble_scheduling.step} & gpu}
        self.skipped = sorted(gpu | ensembles)
        return [f'no GPU on this host: not loading {", ".join(sorted(gpu))} '
                f'(for a GPU)' + (f' nor {", ".join(sorted(ensembles))} (runs '
                'them)' if ensembles else '') + '; serving the CPU models']

    def _versions(self, name: str) -> List[int]:
        return self.store.versions(name)

    def _listed(self, name: str) -> List[int]:
        """The versions the model's config asks for (the export lists the
        one it published), else all in the repository."""
        listed = list(self._config(name).version_policy.specific.versions)
        return sorted(listed) or self._versions(name)

    @property
    def named_config(self) -> str:
        """Where a model keeps the placement ``config_name`` names."""
        from export.repository import NAMED_CONFIGS
        return f'{NAMED_CONFIGS}/{self.config_name}.pbtxt'

    def _config(self, name: str):
        """The config the server uses: the named placement where the model
        has it."""
        from export.triton_config import parse
        named = (self.store.read(name, self.named_config)
                 if self.config_name else None)
        return parse(named or self.store.read(name) or '')

    def _load(self, admin, name: str, versions: Optional[List[int]] = None,
              config=None) -> None:
        """Load ``name``, limited to ``versions`` or with ``config`` given."""
        from google.protobuf import json_format
        if versions is not None:
            config = self._config(name)
            config.version_policy.specific.versions[:] = versions
        admin.load_model(name, headers={ADMIN_HEADER: self.admin_key},
                         config=None if config is None
                         else json_format.MessageToJson(config))

    def _fall_back(self, admin, name: str, broken: dict,
                   exc: Exception) -> str:
        """An ensemble pins one version of every step (the export keeps a
        detector, its preprocessing and its class list together): when that
        version cannot load, serve the newest version all steps have whole."""
        unavailable = f'model {name} is not available: {str(exc).splitlines()[0]}'
        config = self._config(name)
        steps = config.ensemble_scheduling.step
        if config.platform != 'ensemble' or not steps:
            return unavailable
        common = set.intersection(*(
            {v for v in self._versions(s.model_name)
             if v not in broken.get(s.model_name, {})} for s in steps))
        if not common:
            return unavailable
        version = max(common)
        try:
            for model in {s.model_name for s in steps}:
                self._load(admin, model, versions=[version])
            for s in steps:
                s.model_version = version
            self._load(admin, name, config=config)
        except Exception as again:  # tritonclient's own types
            return f'{unavailable}; version {version} neither: ' \
                   f'{str(again).splitlines()[0]}'
        return (f'model {name}: serving version {version} of '
                f'{", ".join(s.model_name for s in steps)} (the pinned '
                'version is not available)')

    def last_error(self) -> str:
        lines = self.log_file.read_text(errors='replace').splitlines()
        errors = [l for l in lines if (l.startswith('E') or 'error' in l.lower())
                  and CPU_HOST_NOISE not in l]
        return (errors or lines or ['no output'])[-1].strip()

    def stop(self, timeout: float = 30) -> Optional[int]:
        """SIGTERM the server's process group (it and its Python stubs);
        SIGKILL what is left after ``timeout``. Stubs outlive a server that
        crashed or was killed, so the group is cleared in every case."""
        return stop_group(self.process, timeout)

    def __enter__(self) -> 'TritonServer':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
