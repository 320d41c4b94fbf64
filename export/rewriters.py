"""mmdeploy rewrites that make the exported graph compute what mmdet computes.

mmdeploy's stock rewrites for two-stage detectors trade exactness for
simplicity, and each trade moves detections away from ``inference_detector``:

* boxes are clipped to the padded input tensor, not to the resized image
  (mmdet clips to ``img_shape``, the unpadded size);
* the RPN runs one NMS over the proposals of all FPN levels, where mmdet's
  ``batched_nms`` keeps the levels apart (by shifting each level's boxes
  apart, which ``grouped_nms`` does too);
* the R-CNN head keeps only the argmax class's box for each RoI, where mmdet
  runs NMS on every class with that class's own regressed box.

The rewrites below restore mmdet's semantics with standard ONNX ops only
(TopK, NonMaxSuppression, ScatterElements, RoiAlign), and add one graph input,
``img_shape`` (float32 ``[batch, 2]``, the resized height and width of each
image), so that images of different sizes padded to one canvas can share a
batch and still each be clipped to their own size. Proposals that do not exist
in mmdet (fewer than ``max_per_img`` survive) are carried as boxes of -1 and
never score in the R-CNN head.

They are registered for the two backends the project exports to; importing
this module is what activates them.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdeploy.codebase.mmdet.deploy import pad_with_value
from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.mmcv.ops.nms import ONNXNMSop
from torch import Tensor

BACKENDS = ('onnxruntime', 'tensorrt')
INVALID = -1.0  # score of a padded proposal or an empty detection slot


def _rewrite(func_name: str):
    def register(fn):
        for backend in BACKENDS:
            FUNCTION_REWRITER.register_rewriter(func_name, backend=backend)(fn)
        return fn
    return register


def clip_to_image(boxes: Tensor, img_shape: Tensor) -> Tensor:
    """Clamp ``[B, ..., 4]`` boxes to each image's own ``(h, w)``."""
    batch = boxes.shape[0]
    flat = boxes.reshape(batch, -1, 4)
    h = img_shape[:, 0].reshape(-1, 1)
    w = img_shape[:, 1].reshape(-1, 1)
    zero = flat.new_zeros(())
    x1 = torch.minimum(torch.maximum(flat[..., 0], zero), w)
    y1 = torch.minimum(torch.maximum(flat[..., 1], zero), h)
    x2 = torch.minimum(torch.maximum(flat[..., 2], zero), w)
    y2 = torch.minimum(torch.maximum(flat[..., 3], zero), h)
    return torch.stack([x1, y1, x2, y2], dim=-1).reshape(boxes.shape)


def grouped_nms(boxes: Tensor, scores: Tensor, iou_threshold: float,
                score_threshold: float,
                max_per_img: int) -> Tuple[Tensor, Tensor, Tensor]:
    """NMS inside each group (FPN level or class), then top-k per image.

    This is mmdet's ``batched_nms`` followed by ``[:max_per_img]``, done as
    mmcv does it: each group's boxes are shifted by ``group x (the largest
    coordinate of the image's candidates + 1)``, so that boxes of different
    groups can never overlap, and one NMS runs over them all. The shift is
    computed in float32 from the same candidates as mmdet's (those scoring
    above ``score_threshold``), so the suppression decisions round as
    mmdet's do; mmcv also shifts above its ``split_thr``, where it loops over
    the groups, which gives the same kept boxes. One image is one batch
    entry with one class of ONNX NonMaxSuppression: on a GPU that is one
    pass per image instead of one per (image, group).

    Args:
        boxes: ``[B, G, N, 4]``.
        scores: ``[B, G, N]``; entries at or below ``score_threshold`` are
            dropped before NMS.

    Returns:
        ``boxes [B, K, 4]``, ``scores [B, K]`` (``INVALID`` in empty slots),
        ``groups [B, K]`` with ``K = max_per_img``, best first.
    """
    num_groups, num_boxes = scores.shape[1], scores.shape[2]
    per_image = num_groups * num_boxes
    candidate = (scores > score_threshold).unsqueeze(-1)
    largest = torch.amax(torch.where(candidate, boxes, boxes.new_zeros(())),
                         dim=(1, 2, 3), keepdim=True)
    group = torch.arange(num_groups, dtype=boxes.dtype,
                         device=boxes.device).reshape(1, -1, 1, 1)
    shifted = boxes + group * (largest + 1)
    selected = ONNXNMSop.apply(
        shifted.reshape(-1, per_image, 4), scores.reshape(-1, 1, per_image),
        max_per_img, iou_threshold, score_threshold)
    index = selected[:, 0] * per_image + selected[:, 2]
    flat_scores = scores.reshape(-1)
    kept = torch.full_like(flat_scores, INVALID).scatter(
        0, index, flat_scores[index]).reshape(-1, per_image)
    top_scores, top_index = kept.topk(max_per_img, dim=1)
    top_boxes = torch.gather(boxes.reshape(-1, per_image, 4), 1,
                             top_index.unsqueeze(-1).expand(-1, -1, 4))
    return top_boxes, top_scores, torch.div(
        top_index, num_boxes, rounding_mode='floor')


@_rewrite('mmdet.models.detectors.two_stage.TwoStageDetector.forward')
def two_stage_detector__forward(self,
                                batch_inputs: Tensor,
                                img_shape: Tensor,
                                data_samples: Optional[list] = None,
                                mode: str = 'tensor',
                                **kwargs) -> Tuple[Tensor, Tensor]:
    """Take each image's resized size as a graph input instead of reading
    the (padded) input tensor's shape."""
    for data_sample in data_samples:
        data_sample.set_field(
            name='img_shape', value=img_shape, field_type='metainfo')
    x = self.extract_feat(batch_inputs)
    rpn_results = self.rpn_head.predict(x, data_samples, rescale=False)
    return self.roi_head.predict(x, rpn_results, data_samples, rescale=False)


@_rewrite('mmdet.models.dense_heads.rpn_head.RPNHead.predict_by_feat')
def rpn_head__predict_by_feat(self,
                              cls_scores: List[Tensor],
                              bbox_preds: List[Tensor],
                              score_factors: Optional[List[Tensor]] = None,
                              batch_img_metas: Optional[List[dict]] = None,
                              cfg=None,
                              rescale: bool = False,
                              with_nms: bool = True,
                              **kwargs) -> Tuple[Tensor, Tensor]:
    """mmdet's ``RPNHead._predict_by_feat_single`` for a whole batch."""
    cfg = self.test_cfg if cfg is None else cfg
    img_shape = batch_img_metas[0]['img_shape']
    nms_pre = cfg.nms_pre
    batch = cls_scores[0].shape[0]
    priors = self.prior_generator.grid_priors(
        [score.shape[-2:] for score in cls_scores],
        device=cls_scores[0].device)
    level_boxes, level_scores = [], []
    for cls_score, bbox_pred, anchors in zip(cls_scores, bbox_preds, priors):
        cls_score = cls_score.permute(0, 2, 3, 1)
        if self.use_sigmoid_cls:
            scores = cls_score.reshape(batch, -1).sigmoid()
        else:
            scores = cls_score.reshape(batch, -1, 2).softmax(-1)[..., 0]
        deltas = bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, 4)
        # Pad every level to nms_pre so that TopK's k never exceeds the
        # number of anchors, whatever the input size at run time.
        scores = pad_with_value(scores, 1, nms_pre, INVALID)
        deltas = pad_with_value(deltas, 1, nms_pre, 0.)
        anchors = pad_with_value(anchors, 0, nms_pre, 0.)
        scores, index = scores.topk(nms_pre, dim=1)
        deltas = torch.gather(deltas, 1, index.unsqueeze(-1).expand(-1, -1, 4))
        boxes = self.bbox_coder.decode(anchors[index], deltas, max_shape=None)
        boxes = clip_to_image(boxes, img_shape)
        if cfg.get('min_bbox_size', -1) >= 0:
            wide = (boxes[..., 2] - boxes[..., 0]) > cfg.min_bbox_size
            tall = (boxes[..., 3] - boxes[..., 1]) > cfg.min_bbox_size
            scores = torch.where(wide & tall, scores,
                                 scores.new_tensor(INVALID))
        level_boxes.append(boxes)
        level_scores.append(scores)
    boxes, scores, _ = grouped_nms(
        torch.stack(level_boxes, 1), torch.stack(level_scores, 1),
        iou_threshold=cfg.nms.iou_threshold, score_threshold=INVALID,
        max_per_img=cfg.max_per_img)
    valid = (scores > INVALID).unsqueeze(-1)
    boxes = torch.where(valid, boxes, boxes.new_tensor(INVALID))
    dets = torch.cat([boxes, scores.unsqueeze(-1)], dim=-1)
    return dets, torch.zeros_like(scores, dtype=torch.long)


@_rewrite('mmdet.models.roi_heads.bbox_heads.bbox_head.BBoxHead.'
          'predict_by_feat')
def bbox_head__predict_by_feat(self,
                               rois: Tensor,
                               cls_scores: Tensor,
                               bbox_preds: Tensor,
                               batch_img_metas: Sequence[dict],
                               rcnn_test_cfg=None,
                               rescale: bool = False) -> Tuple[Tensor, Tensor]:
    """mmdet's ``multiclass_nms`` over every class's own box, batched.

    Returns ``dets [B, max_per_img, 5]`` (x1, y1, x2, y2, score in the resized
    image's pixels) and ``labels [B, max_per_img]``; empty slots hold zeros
    and label -1.
    """
    img_shape = batch_img_metas[0]['img_shape']
    batch, num_rois = rois.shape[0], rois.shape[1]
    num_classes = self.num_classes
    scores = F.softmax(cls_scores, dim=-1)[..., :num_classes]
    exists = (rois[..., 1] >= 0).unsqueeze(-1)
    scores = torch.where(exists, scores, scores.new_tensor(INVALID))
    boxes = self.bbox_coder.decode(rois[..., 1:], bbox_preds, max_shape=None)
    boxes = boxes.reshape(batch, num_rois, -1, 4)
    if self.reg_class_agnostic:
        boxes = boxes.expand(-1, -1, num_classes, -1)
    boxes = clip_to_image(boxes, img_shape)
    boxes, scores, labels = grouped_nms(
        boxes.permute(0, 2, 1, 3), scores.permute(0, 2, 1),
        iou_threshold=rcnn_test_cfg.nms.iou_threshold,
        score_threshold=rcnn_test_cfg.score_thr,
        max_per_img=rcnn_test_cfg.max_per_img)
    valid = scores > INVALID
    dets = torch.cat([boxes, scores.unsqueeze(-1)], dim=-1)
    dets = torch.where(valid.unsqueeze(-1), dets, dets.new_zeros(()))
    labels = torch.where(valid, labels, labels.new_full((), -1))
    # max_per_img rows as a static size, so that every runtime (and
    # Triton's checks of a config against the model) sees that number, not
    # a bound it derived from the input's (NGC's openvino backend refuses a
    # config whose -1 lies outside a derived bound)
    slots = rcnn_test_cfg.max_per_img
    return dets.reshape(-1, slots, 5), labels.reshape(-1, slots)
