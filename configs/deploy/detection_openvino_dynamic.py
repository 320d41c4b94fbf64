_base_ = ['./detection_onnxruntime_dynamic.py']

# Traced exactly as for ONNX Runtime, then converted with OpenVINO's own
# converter (export/openvino_ir.py): mmdeploy's OpenVINO rewrites would replace
# RoIAlign and NMS with OpenVINO-only ops of other semantics.
# The CPU plugin's properties the model is checked and served with: f32
# stated, since OpenVINO picks bf16 by itself on CPUs with native bf16 matrix
# units. NGC 24.10's openvino backend reads PERFORMANCE_HINT from config.pbtxt
# (the export writes only the keys it reads); the precision reaches it as the
# CPU plugin's default from the image's plugins.xml (deploy/openvino-plugins.xml).
openvino_config = dict(INFERENCE_PRECISION_HINT='f32', PERFORMANCE_HINT='LATENCY')
