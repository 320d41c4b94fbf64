"""The thin-client half of the repository: preprocess -> detector ->
postprocess, wired as a Triton ensemble named after the model.

Clients send encoded image bytes and get boxes in original-image pixels back
(``triton_frcnn.wire`` says how). The preprocess and postprocess models are
published with the detector's version number N, each version folder holding
its own parameters (preprocessing; class names and score threshold) and
copies of the code it runs, and the ensemble pins N on all three steps: a
re-export with other classes or other preprocessing can never pair a detector
version with another version's class list, and the repository needs nothing
from this checkout to load.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import detection
from triton_frcnn import wire
from tritonclient.grpc import model_config_pb2 as mc

from detection.postprocess import DETECTOR_OUTPUTS
from detection.preprocess import (DETECTOR_INPUTS, PREPROCESSED, Preprocessing,
                                  Size, sizes)

from . import repository, triton_config
from .capacity import Capacity

TRITON_MODELS = Path(__file__).resolve().parent / 'triton_models'
# what the Python models import, copied beside them
CODE = {'detection': Path(detection.__file__).resolve().parent,
        'triton_frcnn/wire.py': Path(wire.__file__).resolve()}
PARAMETERS = 'parameters.json'  # beside model.py; the models read it
ENSEMBLE_NOTE = ('An ensemble has no files: its steps, and the version of each '
                 'it runs, are in ../config.pbtxt.\n')
NO_BYTECODE = ('Not a folder, on purpose: Python writes no bytecode here, so '
               'no file in this model newer than its config makes Triton '
               'reload it from disk.\n')
# the tensors between the steps (float32 unless said otherwise)
INTERMEDIATE_DIMS = {'input': [3, -1, -1], 'img_shape': [2],
                     'scale_factor': [2], 'ori_shape': [2],
                     'dets': [-1, 5], 'labels': [-1]}


@dataclass
class Model:
    """One model of the ensemble: its config, and for a Python model the
    source of its ``model.py`` and its version's parameters."""
    config: mc.ModelConfig
    source: Optional[Path] = None
    parameters: Optional[dict] = None
    placements: Dict[str, mc.ModelConfig] = field(default_factory=dict)


def datatype(tensor: wire.Tensor) -> int:
    """Triton's wire datatype name -> the config's enum (BYTES is STRING)."""
    return mc.DataType.Value(
        'TYPE_STRING' if tensor.datatype == 'BYTES' else f'TYPE_{tensor.datatype}')


def _intermediate(name: str, detections: int = -1) -> wire.Tensor:
    """A tensor between two steps; ``detections``: the rows the detector
    always returns (max_per_img), which the postprocess then takes and
    nothing else, so that a caller of it directly is held to that size."""
    dims = [detections if d == -1 and name in DETECTOR_OUTPUTS else d
            for d in INTERMEDIATE_DIMS[name]]
    return wire.Tensor(name, 'INT64' if name == 'labels' else 'FP32',
                       tuple(dims))


def _add(field, tensors: Sequence[wire.Tensor]) -> None:
    for tensor in tensors:
        field.add(name=tensor.name, data_type=datatype(tensor),
                  dims=list(tensor.dims))


def _python_model(name: str, max_batch_size: int, inputs, outputs,
                  source: str, parameters: dict, capacity: Capacity,
                  settings: Optional[dict] = None, instances: int = 1) -> Model:
    """``parameters``: the version's (parameters.json); ``settings``: the
    host's, in config.pbtxt."""
    config = mc.ModelConfig(name=name, backend='python',
                            max_batch_size=max_batch_size)
    _add(config.input, inputs)
    _add(config.output, outputs)
    triton_config.limit_queue(config, capacity)
    config.instance_group.add(count=instances,
                              kind=mc.ModelInstanceGroup.KIND_CPU)
    for key, value in (settings or {}).items():
        config.parameters[key].string_value = value
    return Model(config, TRITON_MODELS / source, parameters)


def models(name: str, version: int, max_batch_size: int,
           params: Preprocessing, classes: Sequence[str],
           score_threshold: float, detections: int, capacity: Capacity,
           gpu_capacity: Optional[Capacity] = None,
           gpu_canvas: Sequence[Size] = ()) -> List[Model]:
    """Preprocess, postprocess and the ensemble that pins ``version`` of
    them and of the detector (which returns ``detections`` rows an image);
    with ``gpu_capacity``, the preprocessing's named GPU placement (its
    instances sized from a GPU pod's CPUs, its padding ``gpu_canvas``'s
    buckets)."""
    pre, detector, post = repository.composing(name)
    to_post = ['scale_factor', 'ori_shape']

    def preprocessing(capacity: Capacity, settings: dict) -> Model:
        return _python_model(
            pre, max_batch_size, [wire.IMAGE], map(_intermediate, PREPROCESSED),
            'preprocess.py', params.to_dict(), capacity,
            {**capacity.preprocess_parameters, **settings},
            capacity.preprocess_instances)
    preprocess = preprocessing(capacity, {})
    if gpu_capacity is not None:
        canvas = {'canvas': sizes(gpu_canvas)} if gpu_canvas else {}
        preprocess.placements['gpu'] = preprocessing(gpu_capacity, canvas).config
    postprocess = _python_model(
        post, max_batch_size,
        [_intermediate(n, detections) for n in [*DETECTOR_OUTPUTS, *to_post]],
        wire.OUTPUTS,
        'postprocess.py', {'classes': list(classes),
                           'score_threshold': float(score_threshold)},
        capacity)
    ensemble = mc.ModelConfig(name=name, platform='ensemble',
                              max_batch_size=max_batch_size)
    _add(ensemble.input, [wire.IMAGE])
    _add(ensemble.output, wire.OUTPUTS)
    steps = ensemble.ensemble_scheduling.step
    same = lambda names: {n: n for n in names}  # noqa: E731
    steps.add(model_name=pre, model_version=version,
              input_map=same([wire.IMAGE.name]), output_map=same(PREPROCESSED))
    steps.add(model_name=detector, model_version=version,
              input_map=same(DETECTOR_INPUTS), output_map=same(DETECTOR_OUTPUTS))
    steps.add(model_name=post, model_version=version,
              input_map=same([*DETECTOR_OUTPUTS, *to_post]),
              output_map=same(t.name for t in wire.OUTPUTS))
    return [preprocess, postprocess, Model(ensemble)]


def write(repo: Path, version: int, parts: Sequence[Model]) -> List[Path]:
    """Publish the Python models as ``version`` and the ensemble as its one
    version, each folder whole or not at all, then their configs."""
    written = []
    for part in parts:
        model_dir = repository.writable_model_dir(repo, part.config.name)

        def fill(folder: Path, part=part) -> None:
            if part.source is None:  # object stores keep no empty folders
                (folder / 'ensemble.txt').write_text(ENSEMBLE_NOTE)
                return
            shutil.copy2(part.source, folder / 'model.py')
            # a file where Python would make its bytecode folder: the
            # stub's import of model.py cannot write into the repository
            # (model.py keeps its own imports from writing)
            (folder / '__pycache__').write_text(NO_BYTECODE)
            (folder / PARAMETERS).write_text(json.dumps(part.parameters,
                                                        indent=2) + '\n')
            for target, source in CODE.items():
                if source.is_dir():
                    shutil.copytree(source, folder / target, ignore=shutil
                                    .ignore_patterns('__pycache__'))
                else:
                    (folder / target).parent.mkdir(parents=True)
                    shutil.copy2(source, folder / target)
        written.append(repository.publish_version(
            model_dir, version if part.source else 1, fill))
        repository.write_configs(model_dir, part.config, part.placements,
                                 version if part.source else None)
    return written
