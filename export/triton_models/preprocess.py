"""Triton Python model: encoded image bytes -> the detector's inputs.

Published as ``<name>_preprocess/<N>/model.py``, N being the version of the
detector it prepares images for, beside ``parameters.json`` (that export's
mean, std, scale and padding, read from its mmdet config) and copies of the
``detection`` package and the wire contract (the Python backend puts the
version folder on sys.path), so the repository is self-contained.

A ``canvas`` parameter in the config (``HxW,HxW``) replaces the version's
padding: the GPU placement's shape buckets live in ``configs/gpu.pbtxt``,
so one version folder serves both placements.
"""
import json
import os
import sys
from dataclasses import replace

# This version's own copies of the code first (a Python that has the project
# installed would import the checkout's instead), and no bytecode written
# into the repository: Triton counts a newer file in a model's folder as a
# change and reloads it from disk (serve/loading.py's fall-back)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

import cv2  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402
from triton_frcnn.wire import IMAGE  # noqa: E402

from detection.preprocess import (PREPROCESSED, BatchError,  # noqa: E402
                                  ImageError, Preprocessing, batch, decode,
                                  parse_sizes, prepare)


class TritonPythonModel:

    def initialize(self, args):
        config = json.loads(args['model_config'])
        settings = {k: v['string_value'] for k, v in config['parameters'].items()}
        cv2.setNumThreads(int(settings['threads']))
        with open(os.path.join(os.path.dirname(__file__), 'parameters.json')) as f:
            self.params = Preprocessing.from_dict(json.load(f))
        if settings.get('canvas'):
            self.params = replace(self.params,
                                  canvas=parse_sizes(settings['canvas']))

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        images = pb_utils.get_input_tensor_by_name(request, IMAGE.name).as_numpy()
        limits = self.params.max_pixels, self.params.max_bytes
        try:
            tensors = batch([prepare(decode(bytes(item[0]), *limits), self.params)
                             for item in images])
        except ImageError as exc:
            return failed(f'bad image: {exc}')
        except BatchError as exc:
            return failed(f'bad request: {exc}')
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(name, tensors[name]) for name in PREPROCESSED])


def failed(message):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
