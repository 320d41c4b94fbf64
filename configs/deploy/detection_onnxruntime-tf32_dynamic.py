_base_ = ['./detection_onnxruntime_dynamic.py']

# The fp32 graph, run with TF32 matmuls and convolutions (ONNX Runtime's CUDA
# provider, use_tf32=1: 10-bit mantissas inside the tensor cores). Only a
# CUDA GPU has TF32, so the export needs --device cuda; mmdeploy's ONNX
# Runtime backend converts nothing for it.
backend_config = dict(precision='tf32')
