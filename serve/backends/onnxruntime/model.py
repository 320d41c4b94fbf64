"""A Python-based Triton backend named ``onnxruntime``.

The tritonserver bundled in the nvidia-pytriton wheel (what runs on hosts
without NVIDIA's container) has only the Python backend, and no C++
onnxruntime backend is published outside the container. Placed at
``<backend-dir>/onnxruntime/model.py``, this file lets a model whose config
says ``backend: "onnxruntime"`` load unchanged: the same repository loads in
NVIDIA's container with the native backend.

It honours what a detector config uses: ``default_model_filename``, dynamic
batching (requests of equal shape are concatenated into one run, as Triton's
dynamic batcher only groups equal shapes) and the native backend's
``intra_op_thread_count`` / ``inter_op_thread_count`` parameters.
"""
import json
import os
from collections import defaultdict

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def initialize(self, args):
        config = json.loads(args['model_config'])
        filename = config.get('default_model_filename') or 'model.onnx'
        path = os.path.join(args['model_repository'], args['model_version'],
                            filename)
        params = {k: v['string_value']
                  for k, v in config.get('parameters', {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get('intra_op_thread_count', 0))
        options.inter_op_num_threads = int(params.get('inter_op_thread_count', 0))
        self.session = ort.InferenceSession(
            path, options, providers=['CPUExecutionProvider'])
        self.inputs = [i['name'] for i in config['input']]
        self.outputs = [o['name'] for o in config['output']]

    def execute(self, requests):
        groups = defaultdict(list)
        arrays = []
        for index, request in enumerate(requests):
            tensors = [pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                       for name in self.inputs]
            arrays.append(tensors)
            groups[tuple(t.shape[1:] for t in tensors)].append(index)
        responses = [None] * len(requests)
        for members in groups.values():
            feed = {name: np.concatenate([arrays[i][k] for i in members])
                    for k, name in enumerate(self.inputs)}
            try:
                results = self.session.run(self.outputs, feed)
            except Exception as exc:  # ORT raises its own exception types
                error = pb_utils.TritonError(
                    f'onnxruntime: {str(exc).splitlines()[0]}')
                for i in members:
                    responses[i] = pb_utils.InferenceResponse(error=error)
                continue
            offset = 0
            for i in members:
                size = arrays[i][0].shape[0]
                responses[i] = pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor(name, result[offset:offset + size])
                    for name, result in zip(self.outputs, results)])
                offset += size
        return responses
