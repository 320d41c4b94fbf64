"""Where this checkout keeps what the tools read and write by default.

The one place that knows the checkout's layout: the mmdet and mmdeploy
configs, the sample images, the weights, and the folders the tools write.
Code that ships inside a package (the Triton models the export publishes,
the backend the launcher installs) finds its files beside itself instead.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / 'configs'
DEPLOY_CONFIGS = CONFIGS / 'deploy'
R50_CONFIG = CONFIGS / 'mmdet/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
DEMO_CONFIG = CONFIGS / 'mmdet/faster_rcnn/faster-rcnn_r18_fpn_synthetic.py'
CHECKPOINTS = ROOT / 'checkpoints'
DEMO_CHECKPOINT = CHECKPOINTS / 'demo_r18_fpn_synthetic.pth'
RANDOM_R50_CHECKPOINT = CHECKPOINTS / 'random_r50_fpn_seed0.pth'
SAMPLES = ROOT / 'assets' / 'samples'
MODEL_REPOSITORY = ROOT / 'model_repository'
RESULTS = ROOT / 'results'
TRITON_WORKDIR = ROOT / '.triton'        # the launcher's backends and log
PERF_ANALYZER = ROOT / '.venv' / 'perf_analyzer'  # scripts/setup.sh puts it here
WORK_DIRS = ROOT / 'work_dirs'           # mmengine training runs
