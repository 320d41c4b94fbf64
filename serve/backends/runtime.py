"""Python-based Triton backends named ``onnxruntime`` and ``openvino``.

The tritonserver bundled in the nvidia-pytriton wheel (what runs on hosts
without NVIDIA's container) has only the Python backend, and no C++
onnxruntime or openvino backend is published outside the container. Copied to
``<backend-dir>/onnxruntime/model.py`` and ``<backend-dir>/openvino/model.py``,
this one file lets a model whose config says ``backend: "onnxruntime"`` or
``backend: "openvino"`` load unchanged: the same repository loads in NVIDIA's
container with the native backends.

It is a stand-in for NGC 24.10's native backends, so it reads what they read
and nothing else (docs/native-backends.md has the table, from their r24.10
source), with the runtimes they embed: ONNX Runtime 1.19.2 and OpenVINO
2024.4, installed apart from the project's own (``serve/backends/
ngc-runtimes.txt``) and found through ``TRITON_FRCNN_RUNTIMES``, with the
server image's ``plugins.xml`` beside that OpenVINO (the CPU plugin's
default precision), so the local server computes what NGC computes. What it adds: requests of equal shape
are concatenated into one run (Triton's dynamic batcher only groups equal
shapes), and ONNX Runtime's threads do not spin-wait for work (the native
backend has no key for it and spins): here they share two cores with the
pre/post Python processes.
"""
import json
import os
import sys
from collections import defaultdict

if os.environ.get('TRITON_FRCNN_RUNTIMES'):  # before the runtimes' import
    sys.path.insert(0, os.environ['TRITON_FRCNN_RUNTIMES'])

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

DEFAULT_FILENAMES = {'onnxruntime': 'model.onnx', 'openvino': 'model.xml'}

# the native onnxruntime backend's numbering of its (deprecated) CUDA keys
CUDNN_SEARCH = {'0': 'EXHAUSTIVE', '1': 'HEURISTIC', '2': 'DEFAULT'}
ARENA_EXTEND = {'0': 'kNextPowerOfTwo', '1': 'kSameAsRequested'}
# the native openvino backend's CPU parameters (all it passes to the plugin)
OPENVINO_KEYS = ('INFERENCE_NUM_THREADS', 'COMPILATION_NUM_THREADS',
                 'HINT_BF16', 'NUM_STREAMS', 'PERFORMANCE_HINT')
# the parameters the native onnxruntime backend passes to every run
RUN_OPTIONS = ('memory.enable_memory_arena_shrinkage',)
# optimization { graph { level } } -> ONNX Runtime's level, as the native reads it
GRAPH_LEVELS = {-1: 'ORT_ENABLE_BASIC', 1: 'ORT_ENABLE_EXTENDED',
                2: 'ORT_DISABLE_ALL'}


def cuda_accelerator(config):
    """The parameters of the config's ``cuda`` gpu_execution_accelerator."""
    accelerators = config.get('optimization', {}).get(
        'execution_accelerators', {}).get('gpu_execution_accelerator', [])
    return next((dict(a.get('parameters', {})) for a in accelerators
                 if a.get('name') == 'cuda'), {})


def cuda_options(config, params, device_id):
    """The CUDA provider's options as the native backend builds them: the
    accelerator's parameters, then, whenever the model has any
    ``parameters`` at all, its four deprecated top-level keys written over
    them, with their defaults where absent (server issue #8808)."""
    options = {**cuda_accelerator(config), 'device_id': str(device_id)}
    if params:
        options.update(
            cudnn_conv_algo_search=CUDNN_SEARCH[
                params.get('cudnn_conv_algo_search', '0')],
            gpu_mem_limit=params.get('gpu_mem_limit', str(2**64 - 1)),
            arena_extend_strategy=ARENA_EXTEND[
                params.get('arena_extend_strategy', '0')],
            do_copy_in_default_stream=params.get('do_copy_in_default_stream',
                                                 '1'))
    return options


def providers(kind, available, options):
    """On a KIND_GPU instance the CUDA provider with ``options``, the CPU
    provider behind it for what CUDA does not run."""
    if kind != 'GPU':
        return ['CPUExecutionProvider']
    if 'CUDAExecutionProvider' not in available:
        raise RuntimeError('a KIND_GPU instance needs the CUDA execution '
                           'provider, and this onnxruntime has none (install '
                           'onnxruntime-gpu)')
    return [('CUDAExecutionProvider', options), 'CPUExecutionProvider']


def onnxruntime_session(path, config, params, output_names, kind, device_id):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(params.get('intra_op_thread_count', 0))
    options.inter_op_num_threads = int(params.get('inter_op_thread_count', 0))
    options.execution_mode = ort.ExecutionMode(
        int(params.get('execution_mode', '0')))
    options.enable_cpu_mem_arena = params.get('enable_mem_arena', '1') != '0'
    options.enable_mem_pattern = params.get('enable_mem_pattern', '1') != '0'
    level = int(config.get('optimization', {}).get('graph', {}).get('level', 0))
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, GRAPH_LEVELS.get(level, 'ORT_ENABLE_ALL'))
    for pool in ('intra', 'inter'):  # this stand-in's own choice, see above
        options.add_session_config_entry(f'session.{pool}_op.allow_spinning',
                                         '0')
    chosen = providers(kind, ort.get_available_providers(),
                       cuda_options(config, params, device_id))
    if kind == 'GPU' and hasattr(ort, 'preload_dlls'):
        ort.preload_dlls()  # CUDA and cuDNN from pip's nvidia-* packages
    session = ort.InferenceSession(path, options, providers=chosen)
    run_options = ort.RunOptions()
    for key in RUN_OPTIONS:  # what the native backend sets per run
        if key in params:
            run_options.add_run_config_entry(key, params[key])
    return lambda feed: session.run(output_names, feed, run_options)


def openvino_properties(params):
    """The CPU plugin's properties from the parameters the native backend
    reads; ``HINT_BF16: YES`` is its one way to name a precision."""
    properties = {k: params[k] for k in OPENVINO_KEYS if k in params}
    if properties.pop('HINT_BF16', '').upper() == 'YES':
        properties['INFERENCE_PRECISION_HINT'] = 'bf16'
    return properties


def openvino_session(path, config, params, output_names, kind, device_id):
    import openvino as ov
    request = ov.Core().compile_model(path, 'CPU', openvino_properties(
        params)).create_infer_request()

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
        self.run = SESSIONS[backend](path, config, params, self.outputs,
                                     args.get('model_instance_kind', 'CPU'),
                                     args.get('model_instance_device_id', 0))
        runtime = sys.modules[backend]  # the module is named as the backend
        pb_utils.Logger.log_info(
            f'{args["model_name"]}: {backend} {runtime.__version__} '
            f'from {os.path.dirname(runtime.__file__)}')

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
