"""A user's own MMDetection model (docs/own-model.md): a training checkpoint
as mmengine's Runner saves it goes through the export exact, every mistake
is one line, and the families around Faster R-CNN are served or refused
with the reason."""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import mmdet
import pytest

from export.errors import ExportError

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG, ROOT, SAMPLES, SMALL_CONFIG

MMDET_CONFIGS = Path(mmdet.__file__).parent / '.mim' / 'configs'
GUIDE = ROOT / 'docs' / 'own-model.md'


def export_cli(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'export', *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stderr[-2000:]
    assert 'Traceback' not in done.stderr, done.stderr[-2000:]
    return done.stderr.strip().splitlines()[-1]


def written(config: Path, body: str) -> Path:
    config.write_text(body)
    return config


def guide_commands() -> list:
    """The commands of the guide's example, as a user types them."""
    block = GUIDE.read_text().split('<!-- the suite runs this block -->')[1]
    block = block.split('```bash')[1].split('```')[0]
    commands = [c for line in block.replace('\\\n', ' ').splitlines()
                for c in line.split(';')]
    return [shlex.split(c) for c in commands
            if c.strip().startswith('$REPO/.venv/bin/python')]


@pytest.mark.slow
def test_the_guides_example_trains_exports_and_serves_a_runner_checkpoint(
        tmp_path):
    """The guide's own commands, run as written in an empty folder: shapes
    data, two iterations of mmengine's Runner, the export of the Runner's
    iter_2.pth (message_hub, optimizer state and all) with parity on the
    user's images, then served with the checkpoint's class names."""
    from serve.server import TritonServer
    from triton_frcnn.client import TritonDetector
    commands = guide_commands()
    assert [c[2] for c in commands] == ['synthetic', 'synthetic.train', 'export']
    for command in commands:
        command = [sys.executable if a == '$REPO/.venv/bin/python' else
                   a.replace('$REPO', str(ROOT)) for a in command]
        done = subprocess.run(command, capture_output=True, text=True,
                              cwd=tmp_path, timeout=900)
        assert done.returncode == 0, (command, done.stderr[-3000:])
    assert (tmp_path / 'work_dirs' / 'shapes' / 'iter_2.pth').is_file()
    assert 'parity: ' in done.stderr and 'publish: ' in done.stderr
    repo = tmp_path / 'model_repository'
    with TritonServer.on_free_ports(repo, workdir=tmp_path / 'triton') as shapes, \
            TritonDetector(f'127.0.0.1:{shapes.grpc_port}', 'shapes') as det:
        found = det(next((tmp_path / 'data' / 'synthetic' / 'val').glob('*.jpg')))
    assert set(found.names) <= {'circle', 'rectangle', 'triangle', 'star', 'cross'}


def test_a_runner_checkpoint_is_read_safely(tmp_path):
    """What the Runner saves beside the weights is read as inert objects:
    the weights and their class names come back, nothing else runs; a
    global that is not training state is still refused."""
    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer

    from export import checkpoint
    state = torch.load(DEMO_CHECKPOINT, weights_only=True)
    buffer = HistoryBuffer()
    buffer.update(0.5)
    path = tmp_path / 'iter_2.pth'
    torch.save({**state, 'message_hub': {'log_scalars': {'loss': buffer},
                                         'runtime_info': {'x': np.float64(1)}},
                'optimizer': {'state': {}}}, path)
    loaded = checkpoint.load(path)
    assert set(loaded) == {'state_dict', 'meta'}
    assert checkpoint.class_names(loaded) == (
        'circle', 'rectangle', 'triangle', 'star', 'cross')
    assert loaded['state_dict'].keys() == state['state_dict'].keys()

    class Payload:
        def __reduce__(self):
            return (print, ('pwned',))
    torch.save({**state, 'message_hub': {'x': Payload()}}, tmp_path / 'evil.pth')
    with pytest.raises(ExportError, match=r'refused by the safe loader.*print'):
        checkpoint.load(tmp_path / 'evil.pth')


def test_weights_of_another_class_count_are_one_line(tmp_path):
    """The demo's 5-class weights under an 80-class config of the same
    architecture: one line naming both counts, exit 1, nothing written."""
    config = written(tmp_path / 'eighty.py', (
        f"_base_ = ['{DEMO_CONFIG}']\n"
        "model = dict(roi_head=dict(bbox_head=dict(num_classes=80)))\n"
        "metainfo = None\n"))
    line = one_line(export_cli('-c', config, '-w', DEMO_CHECKPOINT,
                               '-r', tmp_path / 'repo'))
    assert line.startswith(f'export: error: checkpoint {DEMO_CHECKPOINT} does '
                           f'not fit config {config}: ')
    assert line.endswith('the checkpoint has 5 classes, the config 80; pass '
                         'the config it was trained with')
    assert not list((tmp_path / 'repo').glob('*/[0-9]*'))


def test_a_missing_config_or_checkpoint_is_one_line(tmp_path):
    line = one_line(export_cli('-c', tmp_path / 'nope.py', '-w',
                               DEMO_CHECKPOINT, '-r', tmp_path / 'repo'))
    assert line == f'export: error: model config not found: {tmp_path / "nope.py"}'
    line = one_line(export_cli('-c', DEMO_CONFIG, '-w', tmp_path / 'nope.pth',
                               '-r', tmp_path / 'repo'))
    assert line.startswith(f'export: error: checkpoint not found: '
                           f'{tmp_path / "nope.pth"}')


def test_parity_refuses_images_on_which_mmdet_detects_nothing(tmp_path):
    """A model that detects nothing on the parity images (here: a score
    threshold nothing passes) cannot be judged: refused, not '0/0'."""
    config = written(tmp_path / 'blind.py', (
        f"_base_ = ['{DEMO_CONFIG}']\n"
        "model = dict(test_cfg=dict(rcnn=dict(score_thr=1.0)))\n"))
    line = one_line(export_cli('-c', config, '-w', DEMO_CHECKPOINT,
                               '-r', tmp_path / 'repo', '--images', SAMPLES[0]))
    assert line == (
        'export: error: parity cannot judge the export: mmdet detects nothing '
        f'on the 1 parity images ({SAMPLES[0].name}); pass images of your '
        "model's domain with --images; nothing was written")
    assert not list((tmp_path / 'repo').glob('*/[0-9]*'))


@pytest.mark.parametrize('base, kind, why', [
    ('retinanet/retinanet_r50_fpn_1x_coco.py', 'RetinaNet',
     'a single-stage or other detector, without the RPN and RoI head'),
    ('cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', 'CascadeRCNN',
     'its CascadeRoIHead refines boxes over 3 stages'),
    ('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'MaskRCNN',
     'its mask head would be dropped'),
    ('faster_rcnn/faster-rcnn_r50_fpn_soft-nms_1x_coco.py', 'FasterRCNN',
     "its rcnn test NMS is soft_nms, and the graph runs mmdet's hard NMS"),
])
def test_the_families_it_does_not_reproduce_are_refused_naming_why(
        base, kind, why):
    from export.model import SERVED, build, load_config
    with pytest.raises(ExportError) as refused:
        build(load_config(MMDET_CONFIGS / base))
    message = str(refused.value)
    assert message.startswith(f'config builds a {kind}: {why}')
    assert message.endswith(SERVED) and '\n' not in message


@pytest.mark.slow
def test_another_backbone_from_mmdets_registry_exports_exact(tmp_path):
    """Faster R-CNN on MobileNetV2 (random weights): the export's parity
    against mmdet's inference_detector passes on every photo, and served
    (in process) the graph gives mmdet's detections."""
    from export import parity
    from export.model import load
    from export.pipeline import run
    from export.random_checkpoint import make
    from export.request import Export, Request
    config = ROOT / 'tests' / 'configs' / 'faster-rcnn_mobilenetv2_fpn_small.py'
    # its random features are small: a larger classifier gain than the
    # R50's makes mmdet detect on every photo, so parity has work to judge
    weights = make(config, tmp_path / 'mobilenet.pth', seed=0,
                   classifier_gain=4000)
    result = run(Request(Export(config=config, checkpoint=weights,
                                images=SAMPLES, name='mobile',
                                repository=tmp_path / 'repo')))
    assert all(m.fraction >= 0.95 and m.reference > 0 for m in result.matches)
    from detection.runtime import for_version
    local = for_version(result.version_dir)
    model = load(config, weights)[0]
    for path in SAMPLES[:2]:
        match = parity.match(parity.mmdet_detections(model, path), local(path))
        assert match.fraction >= 0.95 and match.reference > 0, match
