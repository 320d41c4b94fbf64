"""Which models a server loads, and what it does when one fails: the policy,
apart from the process that carries it out (``server.py``).

The server loads models explicitly, through the repository API that only
the holder of the admin key may use, so that:

- a named placement (``--model-config-name``) is refused whole rather than
  partly served when no model has it, or when it puts a model on a GPU and
  this host has none;
- on a host without a GPU, models placed on one (and the ensembles that run
  them) are left out and the rest served;
- a model with one broken version serves its other versions (Triton fails
  a model whole), and an ensemble whose pinned version is gone falls back
  to the newest version all its steps have whole.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from export.device import visible_gpus
from export.repository import NAMED_CONFIGS
from export.triton_config import parse

from .errors import ServerError

ADMIN_HEADER = 'triton-admin-key'


def needs_gpu(config) -> bool:
    from tritonclient.grpc import model_config_pb2 as mc
    return config.platform == 'tensorrt_plan' or any(
        g.kind == mc.ModelInstanceGroup.KIND_GPU for g in config.instance_group)


@dataclass
class Admin:
    """The repository API of one server, with the key that opens it."""
    client: object  # tritonclient.http.InferenceServerClient
    key: str

    @property
    def headers(self) -> Dict[str, str]:
        return {ADMIN_HEADER: self.key}

    def index(self) -> List[dict]:
        return self.client.get_model_repository_index(headers=self.headers)

    def load(self, name: str, config: Optional[str] = None) -> None:
        self.client.load_model(name, headers=self.headers, config=config)

    def config(self, name: str) -> dict:
        return self.client.get_model_config(name)

    def close(self) -> None:
        self.client.close()


@dataclass
class Loading:
    """The policy for one repository as a server reads it."""
    store: object  # export.store: a folder or an S3 prefix
    repository: str  # as the user named it, for messages
    config_name: str = ''
    skipped: List[str] = field(default_factory=list)  # need a GPU, none here

    @property
    def named_config(self) -> str:
        """Where a model keeps the placement ``config_name`` names."""
        return f'{NAMED_CONFIGS}/{self.config_name}.pbtxt'

    def config(self, name: str):
        """The config the server uses: the named placement where the model
        has it."""
        named = (self.store.read(name, self.named_config)
                 if self.config_name else None)
        return parse(named or self.store.read(name) or '')

    def listed(self, name: str) -> List[int]:
        """The versions the model's config asks for (the export lists the
        one it published), else all in the repository."""
        listed = list(self.config(name).version_policy.specific.versions)
        return sorted(listed) or self.store.versions(name)

    def check_placement(self) -> None:
        """A named placement must exist, and one that puts a model on a GPU
        needs a GPU here."""
        if not self.config_name:
            return
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
        """With no GPU here, a model for one (KIND_GPU, a TensorRT
        plan) is not loaded, nor the ensembles that run it; one line if any
        was left out."""
        configs = {m: self.config(m) for m in self.store.models()}
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

    def load(self, admin: Admin, name: str,
             versions: Optional[List[int]] = None, config=None) -> None:
        """Load ``name``, limited to ``versions`` or with ``config`` given."""
        from google.protobuf import json_format
        if versions is not None:
            config = self.config(name)
            config.version_policy.specific.versions[:] = versions
        admin.load(name, None if config is None
                   else json_format.MessageToJson(config))

    def recover(self, admin: Admin) -> List[str]:
        """Serve what can be served; one line per problem: a model with a
        broken version is loaded again limited to its other versions, models
        that depend on it (the ensemble) after it."""
        broken: dict = {}
        for entry in admin.index():
            if (entry.get('state') == 'UNAVAILABLE' and entry.get('version')
                    and self.config(entry['name']).platform != 'ensemble'):
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
            good = [v for v in self.listed(name) if v not in failed]
            if good:
                self.load(admin, name, versions=good)
                lines.append(f'model {name}: serving version(s) {good}')
        for entry in admin.index():
            if (entry.get('state') != 'READY' and entry['name'] not in broken
                    and entry['name'] not in self.skipped):
                try:
                    self.load(admin, entry['name'])
                except Exception as exc:  # tritonclient's own types
                    lines.append(self.fall_back(admin, entry['name'], broken, exc))
        return lines

    def fall_back(self, admin: Admin, name: str, broken: dict,
                  exc: Exception) -> str:
        """An ensemble pins one version of every step (the export keeps a
        detector, its preprocessing and its class list together): when that
        version cannot load, serve the newest version all steps have whole."""
        unavailable = f'model {name} is not available: {str(exc).splitlines()[0]}'
        config = self.config(name)
        steps = config.ensemble_scheduling.step
        if config.platform != 'ensemble' or not steps:
            return unavailable
        common = set.intersection(*(
            {v for v in self.store.versions(s.model_name)
             if v not in broken.get(s.model_name, {})} for s in steps))
        if not common:
            return unavailable
        version = max(common)
        try:
            for model in {s.model_name for s in steps}:
                self.load(admin, model, versions=[version])
            for s in steps:
                s.model_version = version
            self.load(admin, name, config=config)
        except Exception as again:  # tritonclient's own types
            return f'{unavailable}; version {version} neither: ' \
                   f'{str(again).splitlines()[0]}'
        return (f'model {name}: serving version {version} of '
                f'{", ".join(s.model_name for s in steps)} (the pinned '
                'version is not available)')
