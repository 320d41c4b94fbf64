"""Python-based Triton backends named ``onnxruntime`` and ``openvino``.

The tritonserver bundled in the nvidia-pytriton wheel (what runs on hosts
without NVIDIA's container) has only the Python backend, and no C++
onnxruntime or openvino backend is published outside the container. Copied to
``<backend-dir>/onnxruntime/model.py`` and ``<backend-dir>/openvino/model.py``,
this one file lets a model whose config says ``backend: "onnxruntime"`` or
``backend: "openvino"`` load unchanged: the same repository loads in NVIDIA's
container with the native backends.

It honours what a detector config uses: ``default_model_filename``, dynamic
batching (requests of equal shape are concatenated into one run, as Triton's
dynamic batcher only groups equal shapes), the native onnxruntime backend's
``intra_op_thread_count`` / ``inter_op_thread_count`` parameters, spin-waiting
(``allow_spinning``: "0" when processes share the cores; NVIDIA's native
backend has no such key and spins, its default), KIND_GPU instances on their
GPU with the CUDA provider as the native backend sets it up (the ``cuda``
gpu_execution_accelerator's parameters, e.g. ``use_tf32``, then the
``cudnn_conv_algo_search`` parameter, numbered as it numbers it), and for
openvino the upper-case CPU plugin properties the native backend passes
through (``INFERENCE_PRECISION_HINT``, ``PERFORMANCE_HINT``, ...).
"""
import json
import os
from collections import defaultdict

import numpy as np
import triton_python_backend_utils as pb_utils

DEFAULT_FILENAMES = {'onnxruntime': 'model.onnx', 'openvino': 'model.xml'}


# config.pbtxt's cudnn_conv_algo_search, numbered as the native backend numbers it
CUDNN_SEARCH = {'0': 'EXHAUSTIVE', '1': 'HEURISTIC', '2': 'DEFAULT'}


def cuda_accelerator(config):
    """The parameters of the config's ``cuda`` gpu_execution_accelerator."""
    accelerators = config.get('optimization', {}).get(
        'execution_accelerators', {}).get('gpu_execution_accelerator', [])
    return next((dict(a.get('parameters', {})) for a in accelerators
                 if a.get('name') == 'cuda'), {})


def providers(kind, device_id, params, available, cuda_options=None):
    """ONNX Runtime's providers for an instance: on a KIND_GPU instance the
    CUDA provider on that instance's GPU, set up as the native backend sets
    it up, the CPU provider behind it for what CUDA does not run."""
    if kind != 'GPU':
        return ['CPUExecutionProvider']
    if 'CUDAExecutionProvider' not in available:
        raise RuntimeError('a KIND_GPU instance needs the CUDA execution '
                           'provider, and this onnxruntime has none (install '
                           'onnxruntime-gpu)')
    cuda = {**(cuda_options or {}), 'device_id': int(device_id),
            'cudnn_conv_algo_search': CUDNN_SEARCH[
                params.get('cudnn_conv_algo_search', '0')]}
    return [('CUDAExecutionProvider', cuda), 'CPUExecutionProvider']


def onnxruntime_session(path, params, output_names, kind='CPU', device_id=0,
                        cuda_options=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(params.get('intra_op_thread_count', 0))
    options.inter_op_num_threads = int(params.get('inter_op_thread_count', 0))
    spinning = params.get('allow_spinning', '1')  # this backend's own key
    for pool in ('intra', 'inter'):
        options.add_session_config_entry(f'session.{pool}_op.allow_spinning',
                                         spinning)
    session = ort.InferenceSession(path, options, providers=providers(
        kind, device_id, params, ort.get_available_providers(), cuda_options))
    return lambda feed: session.run(output_names, feed)


def openvino_session(path, params, output_names, kind='CPU', device_id=0):
    import openvino as ov
    properties = {k: v for k, v in params.items() if k.isupper()}
    request = ov.Core().compile_model(path, 'CPU', properties) \
        .create_infer_request()

    def run(feed):
        results = {port.any_name: value
                   for port, value in request.infer(feed).items()}
        return [results[name] for name in output_names]
    return run


SESSIONS = {'onnxruntime': onnxruntime_session, 'openvino': openvino_session}


class TritonPythonModel:

    def initialize(self, args):
        config = json.loads(args['model_config'])
        backend = config['backend']
        filename = (config.get('default_model_filename')
                    or DEFAULT_FILENAMES[backend])
        path = os.path.join(args['model_repository'], args['model_version'],
                            filename)
        params = {k: v['string_value']
                  for k, v in config.get('parameters', {}).items()}
        self.inputs = [i['name'] for i in config['input']]
        self.outputs = [o['name'] for o in config['output']]
        gpu = ({'cuda_options': cuda_accelerator(config)}
               if backend == 'onnxruntime' else {})
        self.run = SESSIONS[backend](path, params, self.outputs,
                                     args.get('model_instance_kind', 'CPU'),
                                     args.get('model_instance_device_id', 0),
                                     **gpu)

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
                results = self.run(feed)
            except Exception as exc:  # each runtime has its own types
                error = pb_utils.TritonError(
                    f'inference failed: {str(exc).splitlines()[0]}')
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
