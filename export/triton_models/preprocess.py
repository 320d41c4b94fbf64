"""Triton Python model: encoded image bytes -> the detector's inputs.

Copied into the repository as ``<name>_preprocess/<version>/model.py``
beside a copy of the ``detection`` package (the Python backend puts the
version folder on sys.path), so the repository is
self-contained. Its parameters (mean, std, scale, padding) were read from the
mmdet config at export time.
"""
import json

import numpy as np
import triton_python_backend_utils as pb_utils

from detection.preprocess import (ImageError, Preprocessing, batch,
                                  decode, prepare)


class TritonPythonModel:

    def initialize(self, args):
        config = json.loads(args['model_config'])
        params = json.loads(
            config['parameters']['preprocessing']['string_value'])
        self.params = Preprocessing.from_dict(params)

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        images = pb_utils.get_input_tensor_by_name(request, 'IMAGE').as_numpy()
        try:
            prepared = [prepare(decode(bytes(item[0]), self.params.max_pixels,
                                       self.params.max_bytes),
                                self.params) for item in images]
            tensors, img_shapes = batch(prepared)
        except (ImageError, ValueError) as exc:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f'bad image: {exc}'))
        scale = np.asarray([p.scale_factor for p in prepared], np.float32)
        ori = np.asarray([p.ori_shape for p in prepared], np.float32)
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor('input', tensors),
            pb_utils.Tensor('img_shape', img_shapes),
            pb_utils.Tensor('scale_factor', scale),
            pb_utils.Tensor('ori_shape', ori),
        ])
