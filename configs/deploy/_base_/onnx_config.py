# The IR settings every deploy config shares. `img_shape` is the project's
# second input (see export/rewriters.py): each image's resized (h, w), so that
# boxes are clipped to the image rather than to the padded canvas.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,
    save_file='end2end.onnx',
    input_names=['input', 'img_shape'],
    output_names=['dets', 'labels'],
    input_shape=None,
    optimize=True)
