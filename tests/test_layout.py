"""The tree's shape: floors only look down, the client stands alone, the
lock pins what the project declares."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Dict, Iterable, Set, Tuple

from packaging.requirements import Requirement

from .conftest import ROOT

# Floors from the ground up; a module may import its own floor and below.
FLOORS = {'triton_frcnn.wire': 0, 'triton_frcnn.files': 0, 'ground': 0,
          'detection': 1, 'export': 2, 'serve': 3, 'triton_frcnn.client': 4,
          'client': 4, 'tools': 5, 'bench': 5, 'evaluation': 5, 'synthetic': 5}
SOURCES = ['ground', 'detection', 'export', 'serve', 'tools', 'bench',
           'evaluation', 'synthetic', 'client']
HEAVY = ('torch', 'mmcv', 'mmdet', 'mmengine', 'mmdeploy', 'onnxruntime',
         'onnx', 'cv2', 'openvino', 'detection', 'export', 'serve')


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT)
    if relative.parts[:2] == ('client', 'src'):
        relative = relative.relative_to('client/src')
    return '.'.join(relative.with_suffix('').parts).removesuffix('.__init__')


def floor(module: str):
    owners = [k for k in FLOORS if module == k or module.startswith(k + '.')]
    return FLOORS[max(owners, key=len)] if owners else None


def imports(path: Path):
    """Absolute names of the modules ``path`` imports (relative resolved)."""
    package = module_name(path).rsplit('.', 1)[0] \
        if path.name != '__init__.py' else module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(parts + ([base] if base else []))
            yield base


def test_floors_only_look_down():
    upward = []
    for source in SOURCES:
        for path in sorted((ROOT / source).rglob('*.py')):
            name = module_name(path)
            here = floor(name)
            for imported in imports(path):
                there = floor(imported)
                if there is None:
                    continue
                if there > here or (name.startswith('triton_frcnn.client')
                                    and not imported.startswith('triton_frcnn')):
                    upward.append(f'{name} (floor {here}) imports {imported} '
                                  f'(floor {there})')
    assert not upward, '\n'.join(upward)


def project_graph() -> dict:
    """Each module of the tree -> the modules of the tree it imports
    (``from package import module`` counted as the module), wherever in the
    file the import is."""
    modules = {module_name(p): p for s in SOURCES for p in (ROOT / s).rglob('*.py')}

    def owner(name: str):
        found = [m for m in modules if name == m or name.startswith(m + '.')]
        return max(found, key=len) if found else None
    graph = {}
    for name, path in modules.items():
        package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    parts = package.split('.')[:len(package.split('.'))
                                                - node.level + 1]
                    base = '.'.join(parts + ([base] if base else []))
                targets = [base] + [f'{base}.{a.name}' for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {owner(t) for t in targets} - {None, name}
        graph[name] = found
    return graph


def circles(graph: dict) -> list:
    """The groups of modules that import each other, round (Tarjan)."""
    index, low, stack, found = {}, {}, [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))
    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_modules_import_each_other_round():
    assert circles(project_graph()) == []
    # the check can fail
    assert circles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [
        ['a', 'b', 'c']]


def test_the_floor_check_sees_an_upward_import(tmp_path):
    """The check above can fail: an export module importing serve."""
    bad = ROOT / 'export' / '_upward_probe.py'
    bad.write_text('from serve.server import TritonServer\n')
    try:
        found = [i for i in imports(bad) if floor(i) > floor(module_name(bad))]
    finally:
        bad.unlink()
    assert found == ['serve.server']


def test_importing_the_client_loads_no_server_side_and_no_protocol():
    """``import triton_frcnn.client`` and its names: no torch, mmcv, OpenCV,
    ONNX Runtime, OpenVINO, no project server code, and neither gRPC nor
    HTTP until a detector is made."""
    probe = ('import json, sys\n'
             'import triton_frcnn.client as c\n'
             'from triton_frcnn.client import TritonDetector, '
             'AsyncTritonDetector, Detections, Retry, ServerUnavailable\n'
             'import triton_frcnn.client.cli, triton_frcnn.client.output\n'
             'print(json.dumps(sorted(sys.modules)))\n')
    done = subprocess.run([sys.executable, '-c', probe], capture_output=True,
                          text=True, cwd=ROOT / 'client', check=True)
    loaded = json.loads(done.stdout)
    heavy = [m for m in loaded if m.split('.')[0] in HEAVY]
    protocols = [m for m in loaded if m.startswith(
        ('grpc', 'tritonclient.grpc', 'tritonclient.http', 'gevent'))]
    assert heavy == [] and protocols == [], (heavy, protocols)
    assert 'triton_frcnn.client.detector' in loaded  # the probe did import


def declared(pyproject: Path):
    project = tomllib.loads(pyproject.read_text())['project']
    yield from project['dependencies']
    for group in project.get('optional-dependencies', {}).values():
        yield from group


def normal(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def locked() -> Dict[str, Tuple[str, bool]]:
    """requirements.txt: each package's version, and whether it is tagged
    '# dev' (installed by make's tools target only)."""
    lock = {}
    for line in (ROOT / 'requirements.txt').read_text().splitlines():
        if line and not line.startswith('#'):
            pin, _, tag = line.partition('#')
            name, version = pin.strip().split('==')
            lock[normal(name)] = (version, tag.strip() == 'dev')
    return lock


def test_the_lock_pins_every_declared_dependency_within_its_range():
    lock = {name: version for name, (version, _) in locked().items()}
    problems = []
    for pyproject in (ROOT / 'pyproject.toml', ROOT / 'client/pyproject.toml'):
        for text in declared(pyproject):
            req = Requirement(text)
            name = normal(req.name)
            if name == 'triton-frcnn-client':
                continue  # this repository's own ./client
            if name not in lock:
                problems.append(f'{pyproject.name}: {text} is not in the lock')
            elif not req.specifier.contains(lock[name], prereleases=True):
                problems.append(f'{pyproject.name}: {text}, locked {lock[name]}')
    assert not problems, '\n'.join(problems)


def closure(requirements: Iterable[str]) -> Set[str]:
    """The installed distributions ``requirements`` need, themselves
    included, by their declared dependencies (extras followed)."""
    seen: Set[Tuple[str, frozenset]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (normal(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            needs = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in needs:
            need = Requirement(text)
            if need.marker is None or any(need.marker.evaluate({'extra': e})
                                          for e in ('', *req.extras)):
                todo.append(need)
    return {name for name, _ in seen}


def test_what_the_lock_tags_dev_is_what_only_the_dev_role_needs():
    """make demo installs the lock less its '# dev' lines, make's tools target
    those: a package tagged dev that the code's other roles need would be
    missing from the demo, one untagged that only the dev role needs would
    cost the demo its install."""
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    roles = project['optional-dependencies']
    others = [*project['dependencies'], *(r for role, needs in roles.items()
                                          if role != 'dev' for r in needs),
              # installed without their declared dependencies (setup.sh),
              # yet what they import must be there
              'mmdeploy', 'nvidia-pytriton',
              'triton-frcnn-client[http]']
    lock = locked()
    only_dev = (closure(roles['dev']) - closure(others)) & set(lock)
    tagged = {name for name, (_, dev) in lock.items() if dev}
    assert len(tagged) >= 20  # moto, kubernetes-validate, pytest and theirs
    assert tagged == only_dev, (sorted(tagged - only_dev),
                                sorted(only_dev - tagged))


def test_every_package_of_the_tree_is_installed():
    packages = tomllib.loads((ROOT / 'pyproject.toml').read_text())[
        'tool']['setuptools']['packages']
    found = sorted(p.parent.name for p in ROOT.glob('*/__init__.py')
                   if p.parent.name != 'tests')
    assert sorted(packages) == found
