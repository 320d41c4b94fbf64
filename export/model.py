"""Building the mmdet detector from a config and a checkpoint."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Tuple

import torch

from detection.preprocess import Preprocessing

from . import checkpoint as ckpt
from .errors import ExportError


def quiet_logs() -> None:
    """Keep OpenMMLab's INFO chatter (weight init tables, registry fallbacks,
    tracer warnings) out of the CLI's output; errors still show."""
    from mmdeploy.utils import get_root_logger
    from mmengine.logging import MMLogger
    warnings.filterwarnings('ignore')
    get_root_logger(log_level=logging.ERROR)  # mmdeploy's MMLogger instance
    MMLogger.get_instance('mmengine', log_level='ERROR')


def load_config(path: Path):
    if not logging.getLogger('export').isEnabledFor(logging.DEBUG):  # no -v
        quiet_logs()
    from mmengine.config import Config
    if not Path(path).is_file():
        raise ExportError(f'model config not found: {path}')
    try:
        return Config.fromfile(str(path))
    except Exception as exc:  # mmengine raises anything a config's code can
        raise ExportError(f'cannot read model config {path}: {exc}') from None


def build(cfg):
    """The detector with its weights untouched; refuses non-two-stage ones.

    Built as mmdet's ``init_detector`` builds it, minus the checkpoint
    loading, which ``load`` does with the safe loader.
    """
    from mmdet.models.detectors import TwoStageDetector
    from mmdet.models.roi_heads import StandardRoIHead
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.model.utils import revert_sync_batchnorm

    register_all_modules()
    kind = cfg.model.get('type', '?')
    if 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None  # no pretrained-weights download
    try:
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    except Exception as exc:  # the registry raises whatever a module raises
        raise ExportError(f'cannot build model {kind}: {exc}') from None
    model.cfg = cfg
    if not (isinstance(model, TwoStageDetector)
            and isinstance(model.roi_head, StandardRoIHead)):
        raise ExportError(
            f'config builds a {kind}, not a two-stage detector with a '
            'StandardRoIHead (the Faster R-CNN family this exporter serves)')
    return model.eval()


def load(config: Path, checkpoint: Path) -> Tuple[torch.nn.Module, object]:
    """Config + checkpoint -> eval-mode detector whose dataset_meta holds the
    checkpoint's class names."""
    cfg = load_config(config)
    state = ckpt.load(Path(checkpoint))
    model = build(cfg)
    weights = state.get('state_dict', state)
    weights = {k.removeprefix('module.'): v for k, v in weights.items()}
    result = model.load_state_dict(weights, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ExportError(
            f'checkpoint {checkpoint} does not fit config {config}: '
            f'{len(result.missing_keys)} missing keys (e.g. '
            f'{result.missing_keys[:2]}), {len(result.unexpected_keys)} '
            f'unexpected (e.g. {result.unexpected_keys[:2]})')
    num_classes = model.roi_head.bbox_head.num_classes
    names = ckpt.class_names(state) or cfg.get('metainfo', {}).get('classes')
    if names is None:
        from mmdet.evaluation import get_classes
        names = get_classes('coco') if num_classes == 80 else [
            f'class_{i}' for i in range(num_classes)]
    if len(names) != num_classes:
        raise ExportError(f'checkpoint names {len(names)} classes but the '
                          f'model has {num_classes}')
    model.dataset_meta = {'classes': tuple(names)}
    return model, cfg


def preprocessing(cfg) -> Preprocessing:
    """Read resize and normalisation from the config's test pipeline and
    data preprocessor; refuse pipelines this project does not reproduce."""
    pre = cfg.model.data_preprocessor
    pipeline = cfg.test_dataloader.dataset.pipeline
    resizes = [t for t in pipeline if t['type'] == 'Resize']
    if len(resizes) != 1 or not resizes[0].get('keep_ratio', False):
        raise ExportError('test pipeline must have one keep-ratio Resize')
    scale = resizes[0]['scale']
    return Preprocessing(
        mean=tuple(float(v) for v in pre.mean),
        std=tuple(float(v) for v in pre.std),
        to_rgb=bool(pre.get('bgr_to_rgb', False)),
        scale=(int(max(scale)), int(min(scale))),
        pad_size_divisor=int(pre.get('pad_size_divisor', 1)),
        pad_value=float(pre.get('pad_value', 0)))
