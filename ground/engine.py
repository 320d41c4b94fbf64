"""Which engine runs the detectors: NVIDIA's native backends from a backend
directory a user has (one copied out of NGC's image, or built from the
backends' public source), or, without one, the project's Python-based
stand-in (serve/backends/runtime.py).

A number measured on one says nothing of the other, so every server's log
and every result file name the engine, with the runtime versions read from
the libraries themselves (ONNX Runtime's symbol version, OpenVINO's build
string): nothing is loaded to learn them.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

ENVIRONMENT = 'TRITON_BACKEND_DIR'  # what tools and tests read
STAND_IN = 'stand-in'
NATIVE = 'native'
# backend -> (the runtime library's name pattern, its version's pattern)
RUNTIMES = {
    'onnxruntime': ('libonnxruntime.so*', rb'VERS_(\d+\.\d+\.\d+)'),
    'openvino': ('libopenvino.so*', rb'(20\d\d\.\d+\.\d+)-\d+-[0-9a-f]+'),
}


class EngineError(ValueError):
    """A backend directory that holds no native backend."""


@dataclass(frozen=True)
class Engine:
    directory: Optional[Path] = None  # None: the stand-in

    @classmethod
    def from_environment(cls) -> 'Engine':
        given = os.environ.get(ENVIRONMENT, '').strip()
        return cls.of(Path(given) if given else None)

    @classmethod
    def of(cls, directory: Optional[Path]) -> 'Engine':
        """The engine of ``directory``, checked: a folder with at least one
        ``NAME/libtriton_NAME.so``."""
        if directory is None:
            return cls()
        directory = Path(directory).resolve()
        if not directory.is_dir():
            raise EngineError(f'backend directory not found: {directory}')
        engine = cls(directory)
        if not engine.backends():
            raise EngineError(f'{directory} holds no Triton backend '
                              '(NAME/libtriton_NAME.so)')
        return engine

    @property
    def name(self) -> str:
        return STAND_IN if self.directory is None else NATIVE

    def backends(self) -> Dict[str, Path]:
        """Each native backend in the directory, by name, but the Python
        backend: that one always comes with the local tritonserver, whose
        stub embeds this interpreter."""
        if self.directory is None:
            return {}
        return {p.name: p for p in sorted(self.directory.iterdir())
                if (p / f'libtriton_{p.name}.so').is_file()
                and p.name != 'python'}

    def describe(self) -> Dict[str, object]:
        """What a result file and a server's log say of it."""
        if self.directory is None:
            return {'name': STAND_IN, 'backends': 'Python-based onnxruntime '
                    'and openvino (serve/backends/runtime.py)'}
        return {'name': NATIVE, 'directory': str(self.directory),
                'backends': {name: runtime_version(path, name)
                             for name, path in self.backends().items()}}

    def line(self) -> str:
        if self.directory is None:
            return f'engine: the stand-in, {self.describe()["backends"]}'
        return (f'engine: native backends from {self.directory}: ' + ', '.join(
            f'{name} (runtime {version})' for name, version
            in self.describe()['backends'].items()))


@functools.lru_cache(maxsize=None)
def runtime_version(folder: Path, backend: str) -> str:
    """The version of the runtime library beside ``backend``'s, read from
    its bytes; 'unknown' for a runtime not listed or not found."""
    pattern, version = RUNTIMES.get(backend, ('', b''))
    for library in sorted(folder.glob(pattern)) if pattern else ():
        if library.is_file() and not library.is_symlink():
            found = re.search(version, library.read_bytes())
            if found:
                return found.group(1).decode()
    return 'unknown'
