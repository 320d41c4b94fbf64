"""An exported repository placed on this host's device, as a copy: what a GPU
host without mmdet serves (``python -m bench.gpu``), the graph files
hard-linked, the configs rewritten."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

from export.device import Device
from export.repository import composing


def version_of(repository: Path, model: str) -> Path:
    """The detector version the ensemble ``model`` is pinned to."""
    from export.triton_config import parse
    detector = composing(model)[1]
    config = parse((repository / detector / 'config.pbtxt').read_text())
    return repository / detector / str(config.version_policy.specific.versions[0])


def place_repository(source: Path, target: Path, model: str, device: Device,
                     tf32: bool, canvas: Sequence = (),
                     graph: Optional[Path] = None,
                     as_name: Optional[str] = None) -> Path:
    """A copy of ``model``'s folders in ``source`` (named ``as_name``'s, so
    that one repository holds several placements of one model), set up for
    this host: its detector placed on ``device`` (instance group, batching,
    CUDA settings, a warm-up of every padded size at every batch size) and
    its preprocessing given this host's instances; ``canvas``: shape
    buckets, as a GPU placement's preprocessing carries them; ``graph``:
    another graph file for the detector (the fp16 one). Returns the
    detector's version folder."""
    from detection.preprocess import Preprocessing, sizes
    from export.capacity import Capacity, available_cpus
    from export.triton_config import parse, place, to_text, warm_up
    name = as_name or model
    renamed = dict(zip(composing(model) + [model], composing(name) + [name]))
    configs = {}
    for old, new in renamed.items():
        shutil.rmtree(target / new, ignore_errors=True)
        shutil.copytree(source / old, target / new, copy_function=os.link)
        config = parse((target / new / 'config.pbtxt').read_text())
        config.name = new
        for step in config.ensemble_scheduling.step:
            step.model_name = renamed[step.model_name]
        configs[new] = config
    pre_name, detector_name, _ = composing(name)
    detector, pre = configs[detector_name], configs[pre_name]
    version = target / detector_name / str(
        detector.version_policy.specific.versions[0])
    meta = json.loads((version / 'metadata.json').read_text())
    capacity = Capacity(**{**meta['capacity'], 'cpus': available_cpus(),
                           'gpu': device.gpu, 'batch_requests': None})
    place(detector, capacity, device,
          detector.dynamic_batching.max_queue_delay_microseconds or 2000, tf32)
    params = Preprocessing.from_dict(meta['preprocessing'])
    warm_up(detector, canvas or params.canvas or (params.largest,), device.gpu)
    pre.instance_group[0].count = capacity.preprocess_instances
    if canvas:
        pre.parameters['canvas'].string_value = sizes(canvas)
    for new, config in configs.items():  # each written once, renamed and placed
        rewrite(target / new / 'config.pbtxt', to_text(config))
    if graph is not None:
        (version / 'model.onnx').unlink()
        shutil.copyfile(graph, version / 'model.onnx')
    return version


def missing(repository: Path, model: str) -> str:
    """Why ``model`` cannot be placed from ``repository``, or ''."""
    absent = [part for part in composing(model) + [model]
              if not (repository / part / 'config.pbtxt').is_file()]
    return (f'{repository} holds no exported {model!r} ({", ".join(absent)} '
            'missing; python -m export -r REPO -m NAME writes them)'
            if absent else '')


def rewrite(path: Path, text: str) -> None:
    """A new file, not new contents: ``path`` is a hard link into the
    repository the copy was made from."""
    path.unlink()
    path.write_text(text)


