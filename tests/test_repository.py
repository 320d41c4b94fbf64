"""Model repository writing and Triton config generation (no model needed)."""
from __future__ import annotations

import re

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export import repository
from export.capacity import Capacity
from export.formats import FORMATS, table
from export.triton_config import Tensor, detector, parse, to_text

from .conftest import ROOT

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


def test_a_publish_without_a_gpu_placement_removes_the_older_one(tmp_path):
    """onnxruntime (a GPU placement) then tensorrt (none, its engine is
    one): the old configs/gpu.pbtxt, pinned to version 1, is gone, so the
    gpu overlay takes the new config.pbtxt; a user's own placement stays."""
    model_dir = repository.writable_model_dir(tmp_path, 'det')
    config = detector('det', FORMATS['onnxruntime'], INPUTS, OUTPUTS,
                      [(800, 1344)], Capacity(2))
    repository.write_configs(model_dir, config, {'gpu': config}, 1)
    (model_dir / 'configs' / 'mine.pbtxt').write_text(to_text(config))
    assert (model_dir / 'configs' / 'gpu.pbtxt').is_file()
    repository.write_configs(model_dir, config, {}, 2)
    assert sorted(p.name for p in (model_dir / 'configs').iterdir()) == [
        'mine.pbtxt']
    assert list(parse((model_dir / 'config.pbtxt').read_text())
                .version_policy.specific.versions) == [2]


def test_every_canvas_bucket_is_warmed_up_while_loading():
    """On a GPU a shape's first run picks cuDNN's algorithms: each bucket
    pays that at load, not in a request, at every batch size the batcher
    may form there; on a CPU once a bucket."""
    def warmups(capacity):
        config = parse(to_text(detector('det', FORMATS['onnxruntime'], INPUTS,
                                        OUTPUTS, [(800, 1344), (1344, 800)],
                                        capacity)))
        assert all(w.inputs['input'].zero_data for w in config.model_warmup)
        return [(w.name, w.batch_size, list(w.inputs['input'].dims))
                for w in config.model_warmup]
    assert warmups(Capacity(4)) == [('zeros_800x1344', 1, [3, 800, 1344]),
                                    ('zeros_1344x800', 1, [3, 1344, 800])]
    on_gpu = warmups(Capacity(4, gpu=True))
    assert len(on_gpu) == 2 * 8
    assert on_gpu[:2] == [('zeros_800x1344', 1, [3, 800, 1344]),
                          ('zeros_800x1344_x2', 2, [3, 800, 1344])]
    assert on_gpu[-1] == ('zeros_1344x800_x8', 8, [3, 1344, 800])


def test_tensorrt_plan_config_for_gpu_hosts():
    config = detector('det', FORMATS['tensorrt-fp16'], INPUTS, OUTPUTS,
                      [(800, 1344)], Capacity(4, detector_instances=2, gpu=True))
    parsed = parse(to_text(config))
    assert parsed.platform == 'tensorrt_plan' and not parsed.backend
    assert parsed.max_batch_size == 8
    assert parsed.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert parsed.instance_group[0].count == 2
    # on a GPU the batcher groups queued requests
    assert not parsed.dynamic_batching.preferred_batch_size
    assert parsed.dynamic_batching.max_queue_delay_microseconds == 2000
    assert list(parsed.model_warmup[0].inputs['input'].dims) == [3, 800, 1344]
    assert list(parsed.model_warmup[0].inputs['img_shape'].dims) == [2]
    assert FORMATS['tensorrt-fp16'].filename == 'model.plan'
    assert FORMATS['tensorrt-fp16'].precision == 'fp16'


def test_onnxruntime_config_with_tensorrt_accelerator():
    config = parse(to_text(detector('det', FORMATS['onnxruntime'], INPUTS,
                                    OUTPUTS, [(800, 1344)], Capacity(4, gpu=True),
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
        if fmt.backend == 'openvino':  # f32 reaches NGC through plugins.xml
            assert cfg.openvino_config.INFERENCE_PRECISION_HINT == 'f32'
    assert '| tensorrt-fp16 | <name> | tensorrt_plan |' in table()
    assert '| openvino | <name>_openvino | openvino | model.xml |' in table()
    assert '| onnxruntime-int8 | <name>_int8 | onnxruntime |' in table()
    assert '| onnxruntime-fp16 | <name>_fp16 | onnxruntime | model.onnx | fp16 |' in table()
    assert '| tf32 | CUDA GPU (--device cuda);' in table()
    # a flag a format does not take is refused: the table says which
    assert '| GPU + TensorRT | no | the engine is one | detection_tensorrt_dynamic' in table()
    assert '| fp32 | CPU | yes | none: CPU | detection_openvino_dynamic.py |' in table()
    # the named GPU placement: what ONNX Runtime's CUDA provider runs
    assert '| CPU or CUDA GPU | yes | configs/gpu.pbtxt | detection_onnxruntime_dynamic.py |' in table()
    assert '| int8 | CPU; calibration images;' in table()
    assert '| yes | none: CPU | detection_onnxruntime-int8_dynamic.py |' in table()


@pytest.mark.parametrize('cpus', [1, 2, 16])
def test_thread_budget_follows_the_rule(cpus):
    """The detector gets every CPU with spinning off; preprocessing one
    OpenCV thread, one instance (half the CPUs' on a GPU host); every model
    a queue cap and a wait limit, and on a CPU one request an execution."""
    from export.capacity import Capacity
    from export.ensemble import models
    from detection.preprocess import Preprocessing
    capacity = Capacity(cpus, max_queue=5, queue_timeout_s=2.5)
    config = parse(to_text(detector('det', FORMATS['onnxruntime'], INPUTS,
                                    OUTPUTS, [(800, 1344)], capacity)))
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params == {'intra_op_thread_count': str(cpus),
                      'inter_op_thread_count': '1',
                      'memory.enable_memory_arena_shrinkage': 'cpu:0'}
    assert config.instance_group[0].count == 1
    pre, post, ensemble = (m.config for m in models(
        'm', 3, 8, Preprocessing(), ['a'], 0.05, 100, capacity))
    assert pre.parameters['threads'].string_value == '1'
    assert pre.instance_group[0].count == post.instance_group[0].count == 1
    assert not post.parameters and not ensemble.HasField('dynamic_batching')
    assert [(step.model_name, step.model_version)
            for step in ensemble.ensemble_scheduling.step] == [
        ('m_preprocess', 3), ('m_detector', 3), ('m_postprocess', 3)]
    on_gpu = [m.config for m in models('m', 3, 8, Preprocessing(), ['a'],
                                       0.05, 100, Capacity(cpus, gpu=True))]
    assert [m.instance_group[0].count for m in on_gpu[:2]] == [
        max(1, cpus // 2), 1]  # the cores feed the card
    for model in (config, pre, post):
        policy = model.dynamic_batching.default_queue_policy
        assert policy.max_queue_size == 5
        assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
        assert policy.default_timeout_microseconds == 2_500_000
        assert list(model.dynamic_batching.preferred_batch_size) == [1]
        assert model.dynamic_batching.max_queue_delay_microseconds == 0
    batching = parse(to_text(detector(
        'det', FORMATS['onnxruntime'], INPUTS, OUTPUTS, [(800, 1344)],
        Capacity(cpus, batch_requests=True), max_queue_delay_us=700)))
    assert not batching.dynamic_batching.preferred_batch_size
    assert batching.dynamic_batching.max_queue_delay_microseconds == 700
    two = Capacity(cpus, detector_instances=2)
    assert two.detector_threads == max(1, cpus // 2)
    openvino = detector('det', FORMATS['openvino'], INPUTS, OUTPUTS,
                        [(800, 1344)], capacity)
    assert openvino.parameters['INFERENCE_NUM_THREADS'].string_value == str(cpus)


def test_cpus_are_capped_by_a_container_quota(tmp_path):
    from export.capacity import available_cpus
    import os
    mine = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / 'cpu.max'
    cpu_max.write_text('150000 100000\n')  # 1.5 CPUs: rounded up
    assert available_cpus(cpu_max) == min(mine, 2)
    cpu_max.write_text('max 100000\n')
    assert available_cpus(cpu_max) == mine
    assert available_cpus(tmp_path / 'absent') == mine


def test_the_pipeline_runs_the_steps_the_formats_table_names():
    """A format is a row: the pipeline asks no format what it is (no branch
    on its backend, platform, name or precision) and runs the steps the row
    carries."""
    from export import steps
    source = (ROOT / 'export' / 'pipeline.py').read_text()
    assert re.findall(r'fmt\.(?:backend|platform|name|precision)\s*(?:[!=]=|in\b)',
                      source) == []
    rows = {name: (f.convert, f.reduce, f.build, f.configure)
            for name, f in FORMATS.items()}
    assert rows['openvino'] == (steps.to_openvino, None, None,
                                steps.openvino_parameters)
    assert rows['onnxruntime-int8'][1] is steps.quantized
    assert rows['onnxruntime-fp16'][1] is steps.halved
    assert rows['tensorrt'][:3] == (steps.as_onnx, None, steps.tensorrt_engine)
    assert [f.bench for f in FORMATS.values() if f.bench] == ['fp32', 'int8',
                                                             'openvino']
