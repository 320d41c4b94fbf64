# Faster R-CNN on another backbone from mmdet's registry (MobileNetV2, its
# depthwise convolutions and ReLU6 included) at the small test scale: what a
# user's own model changes most often is the backbone.
_base_ = ['./faster-rcnn_r50_fpn_small.py']

model = dict(
    backbone=dict(_delete_=True, type='MobileNetV2', out_indices=(1, 2, 4, 7),
                  norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None),
    neck=dict(in_channels=[24, 32, 96, 1280]))
