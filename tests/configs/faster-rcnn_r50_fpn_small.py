# The seed model at a small test-time scale, so the suite stays fast. Same
# architecture, same post-processing; only the resize bound differs.
_base_ = ['../../configs/mmdet/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(416, 256), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
