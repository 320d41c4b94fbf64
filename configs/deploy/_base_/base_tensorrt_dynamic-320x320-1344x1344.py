# TensorRT optimisation profile: batch 1..8, sides 320..1344 (mmdet's 1333x800
# resize padded to 32 fits in 1344x1344).
_base_ = ['./base_dynamic.py', './backends/tensorrt.py']

backend_config = dict(model_inputs=[
    dict(input_shapes=dict(
        input=dict(min_shape=[1, 3, 320, 320],
                   opt_shape=[1, 3, 800, 1344],
                   max_shape=[8, 3, 1344, 1344]),
        img_shape=dict(min_shape=[1, 2], opt_shape=[1, 2], max_shape=[8, 2])))
])
