"""Triton Python model: the detector's outputs -> boxes in original pixels.

Copied into the repository as ``<name>_postprocess/<version>/model.py``.
Each image's detections are padded to the longest in the request;
``num_detections`` says how many are real.
"""
import json

import numpy as np
import triton_python_backend_utils as pb_utils

from detection.postprocess import postprocess


def _tensor(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


class TritonPythonModel:

    def initialize(self, args):
        config = json.loads(args['model_config'])
        params = config['parameters']
        self.classes = np.asarray(
            [c.encode() for c in json.loads(params['classes']['string_value'])],
            dtype=object)
        self.score_thr = float(params['score_threshold']['string_value'])

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        dets, labels = _tensor(request, 'dets'), _tensor(request, 'labels')
        scales, oris = _tensor(request, 'scale_factor'), _tensor(request, 'ori_shape')
        found = [postprocess(d, l, tuple(s), tuple(int(v) for v in o),
                             self.score_thr)
                 for d, l, s, o in zip(dets, labels, scales, oris)]
        width = max(len(f) for f in found)
        boxes = np.zeros((len(found), width, 4), np.float32)
        scores = np.zeros((len(found), width), np.float32)
        classes = np.full((len(found), width), -1, np.int64)
        names = np.full((len(found), width), b'', dtype=object)
        for i, f in enumerate(found):
            n = len(f)
            boxes[i, :n], scores[i, :n], classes[i, :n] = f.boxes, f.scores, f.labels
            names[i, :n] = self.classes[f.labels]
        count = np.asarray([[len(f)] for f in found], np.int32)
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor('BOXES', boxes), pb_utils.Tensor('SCORES', scores),
            pb_utils.Tensor('CLASSES', classes),
            pb_utils.Tensor('CLASS_NAMES', names),
            pb_utils.Tensor('NUM_DETECTIONS', count)])
