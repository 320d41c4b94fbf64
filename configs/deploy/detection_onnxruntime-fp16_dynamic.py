_base_ = ['./detection_onnxruntime_dynamic.py']

# mmdeploy's ONNX Runtime fp16 conversion (onnxconverter-common's float16),
# as its own onnxruntime-fp16 backend config sets it, except that inputs and
# outputs stay fp32: the preprocess model sends fp32 and the boxes come back
# at full precision. Ops without fp16 kernels (RoiAlign, NonMaxSuppression,
# TopK, Range, Min, Max...) stay fp32 by the converter's default block list.
backend_config = dict(
    precision='fp16',
    common_config=dict(
        min_positive_val=1e-7,
        max_finite_val=1e4,
        keep_io_types=True,
        disable_shape_infer=False,
        op_block_list=None,
        node_block_list=None))
