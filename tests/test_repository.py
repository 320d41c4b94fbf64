"""Model repository writing and Triton config generation (no model needed)."""
from __future__ import annotations

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export import repository
from export.formats import FORMATS, table
from export.triton_config import Tensor, detector, parse, to_text

INPUTS = [Tensor('input', mc.TYPE_FP32, (3, -1, -1)),
          Tensor('img_shape', mc.TYPE_FP32, (2,))]
OUTPUTS = [Tensor('dets', mc.TYPE_FP32, (-1, 5)),
           Tensor('labels', mc.TYPE_INT64, (-1,))]


def fill_with(name: str):
    def fill(folder):
        (folder / 'model.onnx').write_text(name)
    return fill


def test_new_exports_go_to_the_next_version(tmp_path):
    model_dir = repository.writable_model_dir(tmp_path, 'm')
    first = repository.publish_version(model_dir, None, fill_with('a'))
    second = repository.publish_version(model_dir, None, fill_with('b'))
    assert (first.name, second.name) == ('1', '2')
    assert (second / 'model.onnx').read_text() == 'b'
    replaced = repository.publish_version(model_dir, 1, fill_with('c'))
    assert replaced == first and (first / 'model.onnx').read_text() == 'c'
    assert repository.versions(model_dir) == [1, 2]
    assert sorted(p.name for p in model_dir.iterdir()) == ['1', '2']


def test_a_failing_write_leaves_no_version_and_no_staging(tmp_path):
    model_dir = repository.writable_model_dir(tmp_path, 'm')

    def fail(folder):
        (folder / 'model.onnx').write_text('half')
        raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'):
        repository.publish_version(model_dir, None, fail)
    assert list(model_dir.iterdir()) == []


def test_tensorrt_plan_config_for_gpu_hosts():
    config = detector('det', FORMATS['tensorrt-fp16'], INPUTS, OUTPUTS,
                      (800, 1344), instances=2, gpu=True)
    parsed = parse(to_text(config))
    assert parsed.platform == 'tensorrt_plan' and not parsed.backend
    assert parsed.max_batch_size == 8
    assert parsed.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert parsed.instance_group[0].count == 2
    assert list(parsed.model_warmup[0].inputs['input'].dims) == [3, 800, 1344]
    assert list(parsed.model_warmup[0].inputs['img_shape'].dims) == [2]
    assert FORMATS['tensorrt-fp16'].filename == 'model.plan'
    assert FORMATS['tensorrt-fp16'].precision == 'fp16'


def test_onnxruntime_config_with_tensorrt_accelerator():
    config = parse(to_text(detector('det', FORMATS['onnxruntime'], INPUTS,
                                    OUTPUTS, (800, 1344), gpu=True,
                                    trt_accelerator='FP16')))
    assert config.backend == 'onnxruntime'
    accel = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accel[0].name == 'tensorrt'
    assert accel[0].parameters['precision_mode'] == 'FP16'


def test_deploy_configs_follow_mmdeploy_naming_and_inherit():
    from mmengine.config import Config
    for fmt in FORMATS.values():
        cfg = Config.fromfile(str(fmt.deploy_config_path))
        assert fmt.deploy_config.startswith('detection_')
        assert cfg.onnx_config.input_names == ['input', 'img_shape']
        assert cfg.onnx_config.dynamic_axes['input'][0] == 'batch'
        if fmt.gpu:
            shapes = cfg.backend_config.model_inputs[0].input_shapes
            assert shapes.input.min_shape[0] == 1
            assert shapes.input.max_shape[0] == 8
            assert cfg.backend_config.common_config.fp16_mode == (
                fmt.precision == 'fp16')
        else:  # traced for ONNX Runtime: standard ops only, also for openvino
            assert cfg.backend_config.type == 'onnxruntime'
        if fmt.backend == 'openvino':
            assert cfg.openvino_config.INFERENCE_PRECISION_HINT == 'f32'
    assert '| tensorrt-fp16 | <name> | tensorrt_plan |' in table()
    assert '| openvino | <name>_openvino | openvino | model.xml |' in table()
    assert '| onnxruntime-int8 | <name>_int8 | onnxruntime |' in table()
