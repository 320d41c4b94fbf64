"""Run by tests/test_deploy.py under the server image's Python (3.10) and
packages: a published preprocess or postprocess version folder's model.py,
as Triton's Python backend runs it, on the requests in an .npz file; the
responses' tensors go to another .npz file.

    python ngc_python.py VERSION_DIR REQUESTS.npz RESPONSES.npz

Triton's ``triton_python_backend_utils`` exists only inside its stub; the
four names the models use stand in for it here. Each request in the input
file is a group of arrays named ``<request>/<tensor>``.
"""
import json
import sys
import types

import numpy as np


class Tensor:
    def __init__(self, name, array):
        self._name, self._array = name, array

    def name(self):
        return self._name

    def as_numpy(self):
        return self._array


class InferenceResponse:
    def __init__(self, output_tensors=(), error=None):
        self.output_tensors, self.error = list(output_tensors), error


def stand_in():
    utils = types.ModuleType('triton_python_backend_utils')
    utils.Tensor, utils.InferenceResponse = Tensor, InferenceResponse
    utils.TritonError = str
    utils.get_input_tensor_by_name = lambda request, name: request[name]
    return utils


def main(version_dir, requests_file, responses_file):
    sys.modules['triton_python_backend_utils'] = stand_in()
    sys.path.insert(0, version_dir)
    import model
    arrays = np.load(requests_file, allow_pickle=True)
    requests = {}
    for key in arrays.files:
        request, name = key.split('/')
        requests.setdefault(request, {})[name] = Tensor(name, arrays[key])
    instance = model.TritonPythonModel()
    config = {'parameters': {'threads': {'string_value': '1'}}}
    instance.initialize({'model_config': json.dumps(config)})
    out = {}
    order = sorted(requests)
    for request, response in zip(order, instance.execute(
            [requests[r] for r in order])):
        if response.error is not None:
            raise SystemExit(f'{request}: {response.error}')
        for tensor in response.output_tensors:
            out[f'{request}/{tensor.name()}'] = tensor.as_numpy()
    out['python'] = np.array(sys.version.split()[0])
    np.savez(responses_file, **out)


if __name__ == '__main__':
    main(*sys.argv[1:])
