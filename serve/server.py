"""Starting, watching and stopping a real ``tritonserver`` on this host.

Hosts without NVIDIA's container run the Triton 2.51 binary bundled in the
nvidia-pytriton wheel, which carries only the Python backend. ``prepare``
assembles a backend directory for it: that Python backend with the stub for
this interpreter, plus either the native backends of a directory the user
has (``--backend-directory``, ``TRITON_BACKEND_DIR``: NGC's own, or ones
built from their source) or this project's Python-based stand-in for the
``onnxruntime`` and ``openvino`` backends.
"""
from __future__ import annotations

import filecmp
import functools
import importlib.util
import os
import shutil
import secrets
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

from detection import paths
from ground.engine import Engine
from ground.process import exit_reason, free_port, stop_group, wait_until

from .errors import ServerError
from .loading import ADMIN_HEADER, Admin, Loading

RUNTIME_BACKEND = Path(__file__).resolve().parent / 'backends' / 'runtime.py'
RUNTIME_BACKENDS = ('onnxruntime', 'openvino')  # names it serves under
# NGC 24.10's ONNX Runtime and OpenVINO, which the stand-in backend runs
# (scripts/setup.sh installs serve/backends/ngc-runtimes.txt there)
NGC_RUNTIMES = Path(sys.prefix) / 'ngc-runtimes'
# the APIs only requests with the admin key may use, here and in the
# Kubernetes Deployment: model control, and what lets a caller read server
# memory or change what the server records; clients keep inference,
# metadata, model config, health and statistics
RESTRICTED = ('model-repository', 'shared-memory', 'trace', 'logging')
# Triton's own advice for memory that glibc's malloc keeps (its model
# management guide; NGC's image has jemalloc): with a background thread
# returning freed pages within a second, the memory of a large request goes
# back to the system after it (docs/direct-requests.md); the server image
# sets the same (deploy/Dockerfile)
JEMALLOC = Path(os.environ.get('FRCNN_JEMALLOC',
                               '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'))
MALLOC_CONF = 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0'
START_ATTEMPTS = 2  # a crash during start-up gets one more start
CPU_HOST_NOISE = 'CudaDriverHelper has not been initialized'  # every start


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


def runtimes_missing() -> List[str]:
    """One line when the stand-in backend runs this environment's runtimes
    instead of NGC's (a copy of the project without ``make setup``)."""
    if NGC_RUNTIMES.is_dir():
        return []
    return [f'{NGC_RUNTIMES} is missing: the onnxruntime and openvino '
            'backends run this environment\'s versions, not NGC 24.10\'s '
            '(make setup installs them)']


def place(source: Path, copy: Path) -> None:
    """``copy`` made the same file as ``source``: a hard link where both
    lie on one file system, a copy elsewhere; nothing done if it is one."""
    if copy.exists() and (os.path.samefile(source, copy)
                          or filecmp.cmp(source, copy, shallow=False)):
        return
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.unlink(missing_ok=True)
    try:
        os.link(source, copy, follow_symlinks=True)
    except OSError:
        shutil.copy2(source, copy)


def place_core_library(install: Installation, folder: Path) -> None:
    """``folder/libtritonserver.so``, the name native backends link to, for
    the bundled server's core library, which the wheel renamed
    (``libtritonserver-HASH.so``): a symbolic link, so that the loader finds
    the file the server already runs and maps it once."""
    core = next(install.libs.glob('libtritonserver-*.so'), None)
    if core is None:
        raise ServerError(f'bundled Triton is incomplete: no libtritonserver '
                          f'in {install.libs}')
    link = folder / 'libtritonserver.so'
    if link.is_symlink() and link.resolve() == core.resolve():
        return
    folder.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(core.resolve())


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
    # the backends that run the detectors (the environment's by default)
    engine: Engine = field(default_factory=Engine.from_environment)
    process: Optional[subprocess.Popen] = None
    # Model loading is explicit so that a broken version can be skipped, and
    # the repository API answers only requests carrying this per-process key:
    # nobody else can load or unload models.
    admin_key: str = field(default_factory=lambda: secrets.token_hex(16))
    report: List[str] = field(default_factory=list)

    @classmethod
    def on_free_ports(cls, repository: Union[Path, str],
                      **kwargs) -> 'TritonServer':
        """A server for one program's own use (demo, eval, bench, tests)."""
        return cls(repository, http_port=free_port(), grpc_port=free_port(),
                   metrics_port=free_port(), **kwargs)

    def prepare(self, install: Installation) -> Path:
        """The backend directory: the bundled Python backend, and the
        engine's native backends or the stand-in (one file,
        serve/backends/runtime.py, as each of its names).

        Files are hard-linked or copied, never symlinked: Triton refuses a
        backend library whose real path lies outside the backend directory.
        """
        backends = self.workdir / 'backends'
        files = {backends / 'python' / p.name: p
                 for p in install.python_backend.iterdir()
                 if p.suffix in ('.so', '.py')}
        files[backends / 'python' / 'triton_python_backend_stub'] = install.stub
        native = self.engine.backends()
        if native:
            place_core_library(install, self.core_libraries)
        for name in native:
            for source in native[name].rglob('*'):
                if source.is_file():
                    files[backends / name / source.relative_to(native[name])] = source
        if not native:
            for name in RUNTIME_BACKENDS:
                files[backends / name / 'model.py'] = RUNTIME_BACKEND
        for stale in [p for p in backends.rglob('*')
                      if p.is_file() and p not in files]:
            stale.unlink()  # another engine's, from an earlier start
        for copy, source in files.items():
            place(source, copy)
        return backends

    def command(self, install: Installation, backends: Path) -> List[str]:
        skipped = self.loading.skipped
        load = (['--load-model=*'] if not skipped else
                [f'--load-model={m}' for m in self.store.models()
                 if m not in skipped])
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
            '--log-verbose=0', '--grpc-infer-allocation-pool-size=0',
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
                   *([str(self.core_libraries)] if self.engine.backends() else []),
                   env.get('LD_LIBRARY_PATH', '')]
        env['LD_LIBRARY_PATH'] = ':'.join(p for p in libdirs if p)
        if NGC_RUNTIMES.is_dir() and not self.engine.backends():
            env['TRITON_FRCNN_RUNTIMES'] = str(NGC_RUNTIMES)
        if JEMALLOC.is_file():
            env['LD_PRELOAD'] = ':'.join(
                p for p in (str(JEMALLOC), env.get('LD_PRELOAD', '')) if p)
            env['MALLOC_CONF'] = MALLOC_CONF
        return env

    @property
    def core_libraries(self) -> Path:
        return self.workdir / 'lib'

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
        self.loading.check_placement()
        gpu_models = self.loading.leave_out_gpu_models()
        install = Installation.bundled()
        crashes: List[str] = []
        while True:
            code = self._launch(install, timeout, again=bool(crashes))
            if code is None:
                self.report = (gpu_models + crashes + self.recover()
                               + ([] if self.engine.backends()
                                  else runtimes_missing())
                               + ([] if JEMALLOC.is_file() else [
                                   f'{JEMALLOC} is missing: the memory of '
                                   'large requests stays with the server '
                                   '(make setup installs libjemalloc2)']))
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
            log.write(b'--- started again after a crash ---\n' if again
                      else f'{self.engine.line()}\n'.encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(install, backends), stdout=log,
                stderr=subprocess.STDOUT, env=self.environment(install),
                start_new_session=True)
        if wait_until(self.is_ready, timeout,
                      gone=lambda: self.process.poll() is not None):
            return None
        if self.process.poll() is not None:
            return self.process.returncode
        self.stop()
        raise ServerError(f'tritonserver not ready after {timeout:.0f} s '
                          f'(log: {self.log_file})')

    def admin(self) -> Admin:
        """The repository API, opened with this server's key."""
        import tritonclient.http as httpclient
        return Admin(httpclient.InferenceServerClient(
            f'{self.host}:{self.http_port}', network_timeout=600.0),
            self.admin_key)

    def recover(self) -> List[str]:
        admin = self.admin()
        try:
            return self.loading.recover(admin)
        finally:
            admin.close()

    @functools.cached_property
    def loading(self) -> Loading:
        return Loading(self.store, str(self.repository), self.config_name)

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
