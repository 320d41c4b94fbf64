_base_ = ['./detection_onnxruntime_dynamic.py']

# Traced exactly as for ONNX Runtime, then converted with OpenVINO's own
# converter (export/openvino_ir.py): mmdeploy's OpenVINO rewrites would replace
# RoIAlign and NMS with OpenVINO-only ops of other semantics.
# Compile-time properties of OpenVINO's CPU plugin, written into config.pbtxt
# as parameters (the names Triton's openvino backend passes through) and used
# by the parity check: f32 stated, since OpenVINO picks bf16 by itself on CPUs
# with native bf16 matrix units.
openvino_config = dict(INFERENCE_PRECISION_HINT='f32', PERFORMANCE_HINT='LATENCY')
