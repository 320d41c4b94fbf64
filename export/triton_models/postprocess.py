"""Triton Python model: the detector's outputs -> boxes in original pixels.

Published as ``<name>_postprocess/<N>/model.py``, N being the version of the
detector whose outputs it reads, beside ``parameters.json`` (that export's
class names and score threshold) and copies of the ``detection`` package and
the wire contract. The outputs are packed by the wire contract: each image's
rows padded to the longest in the request, ``NUM_DETECTIONS`` real.
"""
import json
import os
import sys

# This version's own copies of the code first (a Python that has the project
# installed would import the checkout's instead), and no bytecode written
# into the repository: Triton counts a newer file in a model's folder as a
# change and reloads it from disk (serve/loading.py's fall-back)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

import triton_python_backend_utils as pb_utils  # noqa: E402
from triton_frcnn import wire  # noqa: E402

from detection.postprocess import DETECTOR_OUTPUTS, postprocess  # noqa: E402


def _tensor(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


class TritonPythonModel:

    def initialize(self, args):
        with open(os.path.join(os.path.dirname(__file__), 'parameters.json')) as f:
            params = json.load(f)
        self.classes = [name.encode() for name in params['classes']]
        self.score_thr = float(params['score_threshold'])

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        dets, labels = (_tensor(request, name) for name in DETECTOR_OUTPUTS)
        scales, oris = _tensor(request, 'scale_factor'), _tensor(request, 'ori_shape')
        found = [postprocess(d, l, tuple(s), tuple(int(v) for v in o),
                             self.score_thr)
                 for d, l, s, o in zip(dets, labels, scales, oris)]
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(name, array)
            for name, array in wire.pack(found, self.classes).items()])
