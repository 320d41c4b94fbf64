_base_ = ['./detection_onnxruntime_dynamic.py']

# Per-channel weight scales need DequantizeLinear's `axis` (opset 13).
onnx_config = dict(opset_version=13)
backend_config = dict(precision='int8')
# ONNX Runtime static quantisation (QDQ): uint8 activations, int8 weights per
# output channel, min/max ranges read off `max_images` calibration images.
# Only the compute-heavy ops are quantised; NMS, RoIAlign and box decoding
# stay float, so boxes are decoded at full precision.
calib_config = dict(
    method='MinMax',
    per_channel=True,
    op_types=['Conv', 'Gemm', 'MatMul'],
    max_images=64)
