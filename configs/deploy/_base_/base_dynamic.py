# Two-stage detection with a dynamic batch and a dynamic image size. The
# post-processing thresholds come from the model config's test_cfg (mmdet's
# semantics); the numbers here are mmdeploy's defaults for other heads.
_base_ = ['./onnx_config.py']

codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1,
    ))
onnx_config = dict(
    dynamic_axes={
        'input': {0: 'batch', 2: 'height', 3: 'width'},
        'img_shape': {0: 'batch'},
        'dets': {0: 'batch'},
        'labels': {0: 'batch'},
    })
