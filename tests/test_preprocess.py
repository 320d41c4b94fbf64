"""Our NumPy/OpenCV preprocessing equals mmdet's pipeline, value for value."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from detection.preprocess import (ImageError, Preprocessing, decode,
                                  prepare)

from .conftest import photo_like


def write_variants(folder):
    """Files that exercise decoding: EXIF rotation, grey, alpha, 16-bit,
    palette, and sizes that are not multiples of 32."""
    rgb = photo_like(301, 203, 7)[..., ::-1]
    paths = {}
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = folder / 'rotated.jpg'
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=95)
    paths['exif'] = path
    path = folder / 'grey.png'
    Image.fromarray(rgb).convert('L').save(path)
    paths['grey'] = path
    path = folder / 'alpha.png'
    Image.fromarray(rgb).convert('RGBA').save(path)
    paths['alpha'] = path
    path = folder / 'deep.png'
    cv2.imwrite(str(path), (photo_like(257, 199, 8).astype(np.uint16) * 257))
    paths['16-bit'] = path
    path = folder / 'palette.png'
    Image.fromarray(rgb).convert('P').save(path)
    paths['palette'] = path
    return paths


def mmdet_inputs(model, path):
    from mmengine.dataset import Compose
    from mmdet.utils import get_test_pipeline_cfg
    pipeline = Compose(get_test_pipeline_cfg(model.cfg))
    data = pipeline(dict(img_path=str(path), img_id=0))
    batch = model.data_preprocessor(
        {'inputs': [data['inputs']], 'data_samples': [data['data_samples']]},
        False)
    return batch['inputs'][0].numpy(), batch['data_samples'][0].metainfo


def test_preprocessing_equals_mmdet_pipeline(mmdet_model, onnx_detector,
                                             tmp_path, unseen_images):
    paths = list(write_variants(tmp_path).values()) + unseen_images
    for path in paths:
        expected, meta = mmdet_inputs(mmdet_model, path)
        got = prepare(decode(path.read_bytes()), onnx_detector.params)
        assert got.tensor.shape == expected.shape, path.name
        np.testing.assert_array_equal(got.tensor, expected, err_msg=path.name)
        assert got.img_shape == tuple(meta['img_shape'])
        assert got.ori_shape == tuple(meta['ori_shape'])
        np.testing.assert_allclose(got.scale_factor, meta['scale_factor'])


def test_exif_orientation_is_applied(tmp_path):
    path = write_variants(tmp_path)['exif']
    assert decode(path.read_bytes()).shape[:2] == (301, 203)


def test_resize_fits_the_bounds_like_mmcv_imrescale():
    params = Preprocessing(scale=(1333, 800))
    landscape = prepare(np.zeros((480, 640, 3), np.uint8), params)
    assert landscape.img_shape == (800, 1067)
    assert landscape.tensor.shape == (3, 800, 1088)
    tall = prepare(np.zeros((1000, 200, 3), np.uint8), params)
    assert tall.img_shape == (1333, 267)
    assert tall.tensor.shape == (3, 1344, 288)


@pytest.mark.parametrize('to_rgb', [True, False])
def test_every_pixel_level_normalises_to_the_float_mmdet_computes(to_rgb):
    """All 256 levels in each channel, at a size the resize keeps: the
    looked-up floats are bit for bit ``(x - mean) / std`` in float32, in
    the asked channel order, and the padding holds the pad value."""
    levels = np.arange(256, dtype=np.uint8)
    rows, cols = np.meshgrid(levels, levels, indexing='ij')
    image = np.stack([rows, cols, rows + cols], -1)  # uint8, wraps
    params = Preprocessing(scale=(256, 256), pad_size_divisor=96,
                           pad_value=-7.5, to_rgb=to_rgb)
    got = prepare(image, params)
    assert got.img_shape == (256, 256) and got.tensor.shape == (3, 288, 288)
    pixels = image[..., ::-1] if to_rgb else image
    expected = ((pixels.astype(np.float32) - np.float32(params.mean))
                / np.float32(params.std)).transpose(2, 0, 1)
    np.testing.assert_array_equal(got.tensor[:, :256, :256], expected)
    assert set(np.unique(got.tensor[:, 256:])) == {-7.5}
    assert set(np.unique(got.tensor[:, :, 256:])) == {-7.5}


@pytest.mark.parametrize('array,described', [
    (np.zeros((40, 30), np.uint8), '40x30 uint8'),
    (np.zeros((40, 30, 4), np.uint8), '40x30x4 uint8'),
    (np.zeros((40, 30, 3), np.float32), '40x30x3 float32'),
])
def test_an_array_that_is_not_a_decoded_image_is_refused(array, described):
    with pytest.raises(ImageError, match=r'expected a decoded BGR image '
                       rf'\(HxWx3 uint8\), got {described}$'):
        prepare(array, Preprocessing())


@pytest.mark.parametrize('payload,message', [
    (b'', 'empty'),
    (b'this is text, not a jpeg', 'not a decodable image'),
    (b'\xff\xd8\xff\xe0' + bytes(200), 'not a decodable image'),
])
def test_bad_bytes_raise_a_clear_error(payload, message):
    with pytest.raises(ImageError, match=message):
        decode(payload)


def test_pixel_cap_refuses_before_decoding():
    buffer = io.BytesIO()
    Image.new('L', (4000, 3000)).save(buffer, 'PNG')
    with pytest.raises(ImageError, match='4000x3000 pixels is over the limit'):
        decode(buffer.getvalue(), max_pixels=10_000_000)
    assert decode(buffer.getvalue(), max_pixels=12_000_000).shape == (3000, 4000, 3)
