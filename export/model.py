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
    """The detector with its weights untouched; refuses the families the
    export cannot reproduce exactly, in one line saying why.

    Built as mmdet's ``init_detector`` builds it, minus the checkpoint
    loading, which ``load`` does with the safe loader.
    """
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
    refusal = unsupported(model, cfg)
    if refusal:
        raise ExportError(f'config builds a {kind}: {refusal}; {SERVED}')
    return model.eval()


SERVED = ('this exporter serves Faster R-CNN: a TwoStageDetector with an RPN '
          'and one StandardRoIHead, with any backbone and neck of standard ops')


def unsupported(model, cfg) -> str:
    """Why the exported graph could not compute what mmdet computes for
    this model, or ''."""
    from mmdet.models.detectors import TwoStageDetector
    from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
    if not isinstance(model, TwoStageDetector):
        return ('a single-stage or other detector, without the RPN and RoI '
                'head the export rewrites to reproduce mmdet exactly')
    if isinstance(model.roi_head, CascadeRoIHead):
        return (f'its CascadeRoIHead refines boxes over '
                f'{model.roi_head.num_stages} stages and averages their '
                'scores, which the export does not reproduce yet')
    if not isinstance(model.roi_head, StandardRoIHead):
        return f'its {type(model.roi_head).__name__} is not a StandardRoIHead'
    if model.roi_head.with_mask:
        return 'its mask head would be dropped (the ensemble serves boxes only)'
    for stage in ('rpn', 'rcnn'):
        nms = (cfg.model.test_cfg.get(stage) or {}).get('nms') or {}
        if nms.get('type', 'nms') != 'nms':
            return (f'its {stage} test NMS is {nms["type"]}, and the graph '
                    'runs mmdet\'s hard NMS (type=\'nms\'): change the '
                    'config, or it would not detect what mmdet detects')
    return ''


def load(config: Path, checkpoint: Path) -> Tuple[torch.nn.Module, object]:
    """Config + checkpoint -> eval-mode detector whose dataset_meta holds the
    checkpoint's class names."""
    cfg = load_config(config)
    state = ckpt.load(Path(checkpoint))
    model = build(cfg)
    weights = state.get('state_dict', state)
    weights = {k.removeprefix('module.'): v for k, v in weights.items()}
    refuse_other_shapes(model, weights, checkpoint, config)
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


def refuse_other_shapes(model, weights: dict, checkpoint: Path,
                        config: Path) -> None:
    """One line where a weight's shape is not the model's, naming the first
    and, when it is the classifier's, both class counts (the usual cause:
    a checkpoint trained with another config)."""
    own = model.state_dict()
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in weights.items()
             if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if not wrong:
        return
    name, theirs, ours = wrong[0]
    classifier = 'roi_head.bbox_head.fc_cls.weight'
    counts = ''
    if classifier in weights and classifier in own:
        counts = (f'; the checkpoint has {weights[classifier].shape[0] - 1} '
                  f'classes, the config {own[classifier].shape[0] - 1}')
    raise ExportError(
        f'checkpoint {checkpoint} does not fit config {config}: {len(wrong)} '
        f'weights have other shapes (e.g. {name}: {list(theirs)} in the '
        f'checkpoint, {list(ours)} in the model){counts}; pass the config it '
        'was trained with')


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
