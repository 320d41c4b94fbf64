"""The thin-client half of the repository: preprocess -> detector ->
postprocess, wired as a Triton ensemble named after the model.

Clients send encoded image bytes and get boxes in original-image pixels back.
The Python models' code is copied in with the ``detection`` package it uses,
so the repository needs nothing from this checkout to load.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from tritonclient.grpc import model_config_pb2 as mc

from detection.preprocess import Preprocessing

from . import repository, triton_config

ROOT = Path(__file__).resolve().parent.parent
PYTHON_MODELS = ROOT / 'serve' / 'models'
DETECTION = ROOT / 'detection'

IMAGE = 'IMAGE'
OUTPUTS = (('BOXES', mc.TYPE_FP32, [-1, 4]), ('SCORES', mc.TYPE_FP32, [-1]),
           ('CLASSES', mc.TYPE_INT64, [-1]), ('CLASS_NAMES', mc.TYPE_STRING, [-1]),
           ('NUM_DETECTIONS', mc.TYPE_INT32, [1]))
PREPROCESSED = (('input', [3, -1, -1]), ('img_shape', [2]),
                ('scale_factor', [2]), ('ori_shape', [2]))


def _python_model(name: str, max_batch_size: int, inputs, outputs,
                  parameters: dict) -> mc.ModelConfig:
    config = mc.ModelConfig(name=name, backend='python',
                            max_batch_size=max_batch_size)
    for field, spec in ((config.input, inputs), (config.output, outputs)):
        for tensor_name, dtype, dims in spec:
            field.add(name=tensor_name, data_type=dtype, dims=dims)
    config.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_CPU)
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return config


def configs(name: str, detector: str, max_batch_size: int,
            params: Preprocessing, classes: Sequence[str],
            score_threshold: float) -> List[Tuple[mc.ModelConfig, Optional[Path]]]:
    """Preprocess, postprocess and ensemble configs, each with its Python
    source (None for the ensemble)."""
    pre, post = f'{name}_preprocess', f'{name}_postprocess'
    fp32 = mc.TYPE_FP32
    preprocess = _python_model(
        pre, max_batch_size, [(IMAGE, mc.TYPE_STRING, [1])],
        [(n, fp32, d) for n, d in PREPROCESSED],
        {'preprocessing': json.dumps(params.to_dict())})
    postprocess = _python_model(
        post, max_batch_size,
        [('dets', fp32, [-1, 5]), ('labels', mc.TYPE_INT64, [-1]),
         ('scale_factor', fp32, [2]), ('ori_shape', fp32, [2])],
        OUTPUTS,
        {'classes': json.dumps(list(classes)),
         'score_threshold': repr(float(score_threshold))})
    ensemble = mc.ModelConfig(name=name, platform='ensemble',
                              max_batch_size=max_batch_size)
    ensemble.input.add(name=IMAGE, data_type=mc.TYPE_STRING, dims=[1])
    for tensor_name, dtype, dims in OUTPUTS:
        ensemble.output.add(name=tensor_name, data_type=dtype, dims=dims)
    steps = ensemble.ensemble_scheduling.step
    steps.add(model_name=pre, model_version=-1, input_map={IMAGE: IMAGE},
              output_map={n: n for n, _ in PREPROCESSED})
    steps.add(model_name=detector, model_version=-1,
              input_map={'input': 'input', 'img_shape': 'img_shape'},
              output_map={'dets': 'dets', 'labels': 'labels'})
    steps.add(model_name=post, model_version=-1,
              input_map={n: n for n in
                         ('dets', 'labels', 'scale_factor', 'ori_shape')},
              output_map={n: n for n, _, _ in OUTPUTS})
    return [(preprocess, PYTHON_MODELS / 'preprocess.py'),
            (postprocess, PYTHON_MODELS / 'postprocess.py'), (ensemble, None)]


def write(repo: Path, models: Sequence[Tuple[mc.ModelConfig, Optional[Path]]]
          ) -> List[Path]:
    """Publish each model as version 1 (replaced atomically on re-export)."""
    written = []
    for config, source in models:
        model_dir = repository.writable_model_dir(repo, config.name)

        def fill(folder: Path, source=source):
            if source is not None:
                shutil.copy2(source, folder / 'model.py')
                shutil.copytree(DETECTION, folder / 'detection',
                                ignore=shutil.ignore_patterns('__pycache__'))
        written.append(repository.publish_version(model_dir, 1, fill))
        repository.write_text(model_dir / 'config.pbtxt',
                              triton_config.to_text(config))
    return written
