"""What the client accepts as an image, and the two forms it needs: encoded
bytes to send, and a picture to draw on.

A path or encoded bytes are sent as they are (the server decodes them as
mmdet does). A NumPy array is taken as ``inference_detector`` takes one:
uint8, BGR (or grey, or BGRA), and sent as a lossless PNG, so the server
decodes exactly the pixels given.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps

ImageLike = Union[str, Path, bytes, np.ndarray]


def _rgb_array(array: np.ndarray) -> np.ndarray:
    """BGR/BGRA/grey uint8 -> the same pixels in Pillow's channel order."""
    if array.dtype != np.uint8 or not (
            array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
        raise ValueError('an image array must be uint8 HxW, HxWx3 (BGR) or '
                         f'HxWx4 (BGRA), not {array.dtype} {array.shape}')
    if array.ndim == 3 and array.shape[2] == 1:
        return array[..., 0]
    if array.ndim == 3:
        order = [2, 1, 0, 3][:array.shape[2]]
        return np.ascontiguousarray(array[..., order])
    return array


def encode(image: ImageLike) -> bytes:
    """The bytes to send for ``image``."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(_rgb_array(image)).save(buffer, 'PNG', compress_level=1)
        return buffer.getvalue()
    return Path(image).read_bytes()


def load_image(image: ImageLike) -> Image.Image:
    """RGB, EXIF orientation applied: the frame the server's boxes are in
    (OpenCV's decoder applies the orientation too)."""
    if isinstance(image, np.ndarray):
        return Image.fromarray(_rgb_array(image)).convert('RGB')
    source = io.BytesIO(image) if isinstance(image, bytes) else image
    with Image.open(source) as opened:
        return ImageOps.exif_transpose(opened).convert('RGB')
