"""mmdet's test-time preprocessing, reproduced step for step in NumPy + OpenCV.

The server, the in-process ONNX Runtime path and the parity check all call
this one function, so "exact" means exactly one thing. The steps are those of
mmdet 3.x's ``LoadImageFromFile -> Resize(keep_ratio) -> DetDataPreprocessor``:
``cv2.imdecode(IMREAD_COLOR)`` (EXIF orientation applied, grey and alpha made
BGR), ``mmcv.imrescale``'s scale rule and cv2 bilinear resize of the uint8
image, BGR->RGB, ``(x - mean) / std`` in float32, and zero padding (in
normalised space) bottom/right to a multiple of the divisor.

An export may name a canvas instead (shape buckets, ``--canvas``): each image
is then padded further, to the smallest bucket that holds it, so that images
of different sizes form one batch and a GPU meets a few shapes rather than one
per aspect ratio. That is no longer mmdet's arithmetic (the features near the
border change), so the export judges it by mAP.
"""
from __future__ import annotations

import io

from dataclasses import asdict, dataclass, field, replace
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit
DEFAULT_MAX_BYTES = 32 * 2**20    # an encoded image larger than this is refused
# What the preprocess model hands on: the exported graph's two inputs, then
# what postprocessing needs to map boxes back to the original image.
DETECTOR_INPUTS = ('input', 'img_shape')
PREPROCESSED = DETECTOR_INPUTS + ('scale_factor', 'ori_shape')


class ImageError(ValueError):
    """The bytes are not an image this pipeline can read."""


class BatchError(ValueError):
    """The images of one request cannot form one batch."""


Size = Tuple[int, int]  # (height, width)


@dataclass(frozen=True)
class Preprocessing:
    """The parameters, as read from the mmdet config at export time."""
    mean: Tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: Tuple[float, float, float] = (58.395, 57.12, 57.375)
    to_rgb: bool = True
    scale: Tuple[int, int] = (1333, 800)  # (long edge, short edge) bound
    pad_size_divisor: int = 32
    pad_value: float = 0.0
    canvas: Tuple[Size, ...] = ()  # shape buckets; empty: pad to the divisor
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, compare=False)
    max_bytes: int = field(default=DEFAULT_MAX_BYTES, compare=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'Preprocessing':
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ('mean', 'std', 'scale'):
            if key in known:
                known[key] = tuple(known[key])
        if 'canvas' in known:
            known['canvas'] = tuple(tuple(size) for size in known['canvas'])
        return cls(**known)

    @property
    def exact(self) -> 'Preprocessing':
        """The same without a canvas: mmdet's own padding."""
        return replace(self, canvas=())

    @property
    def largest(self) -> Size:
        """The padded size of the largest landscape image the resize makes."""
        short, long_ = min(self.scale), max(self.scale)
        return (_round_up(short, self.pad_size_divisor),
                _round_up(long_, self.pad_size_divisor))


@dataclass
class Prepared:
    """One preprocessed image and what is needed to map boxes back."""
    tensor: np.ndarray          # float32 [3, H_pad, W_pad]
    img_shape: Tuple[int, int]  # resized (h, w), before padding
    ori_shape: Tuple[int, int]  # decoded (h, w)
    scale_factor: Tuple[float, float]  # (w_scale, h_scale), as mmdet's


def _round_up(value: int, divisor: int) -> int:
    return -(-value // divisor) * divisor


def sizes(canvas: Sequence[Size]) -> str:
    """``HxW,HxW``: how ``--canvas`` is written."""
    return ','.join(f'{h}x{w}' for h, w in canvas)


def parse_sizes(text: str) -> Tuple[Size, ...]:
    """``HxW[,HxW...]`` -> ((h, w), ...); ValueError names the text."""
    try:
        canvas = tuple(tuple(int(side) for side in size.split('x'))
                       for size in text.split(','))
    except ValueError:
        canvas = ()
    if not canvas or any(len(size) != 2 or min(size) < 1 for size in canvas):
        raise ValueError(f'{text!r} is not HxW[,HxW...] (e.g. 800x1344,1344x800)')
    return canvas  # type: ignore[return-value]


def two_buckets(params: Preprocessing) -> Tuple[Size, ...]:
    """The fewest buckets that hold every image the resize makes: the
    largest landscape and the largest portrait canvas (one if square). On a
    GPU each bucket is one shape cuDNN has searched at load."""
    short, long_ = params.largest
    return tuple(sorted({(short, long_), (long_, short)}))


def _holding(size: Size, canvas: Sequence[Size]) -> list:
    return [b for b in canvas if b[0] >= size[0] and b[1] >= size[1]]


def bucket(size: Size, canvas: Sequence[Size]) -> Size:
    """The smallest bucket holding ``size``; ``size`` itself if none does."""
    return min(_holding(size, canvas), key=lambda b: (b[0] * b[1], b),
               default=size)


def canvas_problem(params: Preprocessing) -> Optional[str]:
    """Why ``params.canvas`` cannot take every image the resize makes, or
    None: a bucket must be a multiple of the divisor, and some bucket must
    hold the largest landscape and the largest portrait image."""
    divisor, canvas = params.pad_size_divisor, params.canvas
    odd = [b for b in canvas if b[0] % divisor or b[1] % divisor]
    if odd:
        return (f'canvas {sizes(odd)} is not a multiple of the padding '
                f'divisor {divisor} in both sides')
    (short, long_) = params.largest
    needed = two_buckets(params)
    if not canvas or all(_holding(size, canvas) for size in needed):
        return None
    largest = (f'landscape ones pad up to {short}x{long_}, portrait ones up '
               f'to {long_}x{short}' if short != long_
               else f'they pad up to {short}x{long_}')
    return (f'canvas {sizes(canvas)} does not hold every image this config '
            f'resizes to: {largest}; --canvas {sizes(needed)} holds all')


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
           max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Decode like mmcv.imfrombytes(flag='color', backend='cv2').

    The pixel cap is checked on the header (Pillow reads only that) so that a
    decompression bomb is refused before any pixel is allocated.
    """
    if not data:
        raise ImageError('empty image payload')
    if len(data) > max_bytes:
        raise ImageError(f'image payload of {len(data)} bytes is over the '
                         f'limit of {max_bytes} bytes')
    kind = None
    try:
        with Image.open(io.BytesIO(data)) as header:
            (width, height), kind = header.size, header.format
    except Image.DecompressionBombError:
        width, height = max_pixels + 1, 1
    except (OSError, ValueError, SyntaxError):
        width = height = 0  # let OpenCV judge formats Pillow does not know
    if width * height > max_pixels:
        raise ImageError(f'image of {width}x{height} pixels is over the '
                         f'limit of {max_pixels} pixels')
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None and kind is not None:
        raise ImageError(f'{kind} of {width}x{height} pixels whose pixel data '
                         'is truncated or corrupt')
    if image is None:
        raise ImageError('not a decodable image (unknown format or corrupt)')
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(f'image of {image.shape[1]}x{image.shape[0]} pixels '
                         f'is over the limit of {max_pixels} pixels')
    return image


def rescale_size(width: int, height: int,
                 scale: Sequence[int]) -> Tuple[Tuple[int, int], float]:
    """mmcv.rescale_size: fit (long, short) bounds, keeping the ratio."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width),
                 short_edge / min(height, width))
    return (int(width * factor + 0.5), int(height * factor + 0.5)), factor


def normalising_table(params: Preprocessing) -> np.ndarray:
    """``(x - mean) / std`` in float32, as mmdet computes it, for each of
    the 256 values of a uint8 channel: [3, 256], in the output's channel
    order. Looking pixels up in it gives the very same floats as computing
    them, at a tenth of the cost of three float passes over the image (the
    passes were nine tenths of preprocessing at 1333x800)."""
    levels = np.arange(256, dtype=np.float32)[None]
    mean = np.asarray(params.mean, np.float32)[:, None]
    std = np.asarray(params.std, np.float32)[:, None]
    return (levels - mean) / std


def prepare(image: np.ndarray, params: Preprocessing) -> Prepared:
    """Resize, normalise and pad one decoded BGR uint8 image."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f'expected a decoded BGR image (HxWx3 uint8), got '
                         f'{"x".join(map(str, image.shape))} {image.dtype}')
    height, width = image.shape[:2]
    (new_w, new_h), _ = rescale_size(width, height, params.scale)
    if min(new_w, new_h) < 1:
        raise ImageError(
            f'image of {width}x{height} pixels is too thin: fitted to '
            f'{max(params.scale)}x{min(params.scale)} it would be '
            f'{new_w}x{new_h}')
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    divisor = params.pad_size_divisor
    pad_h, pad_w = bucket((_round_up(new_h, divisor), _round_up(new_w, divisor)),
                          params.canvas)
    tensor = np.empty((3, pad_h, pad_w), np.float32)
    tensor[:, new_h:] = params.pad_value
    tensor[:, :new_h, new_w:] = params.pad_value
    planes = cv2.split(resized)  # B, G, R
    order = (2, 1, 0) if params.to_rgb else (0, 1, 2)
    for channel, (plane, table) in enumerate(zip(
            (planes[i] for i in order), normalising_table(params))):
        cv2.LUT(plane, table, dst=tensor[channel, :new_h, :new_w])
    return Prepared(tensor=tensor, img_shape=(new_h, new_w),
                    ori_shape=(height, width),
                    scale_factor=(new_w / width, new_h / height))


def batch(prepared: Sequence[Prepared]) -> Dict[str, np.ndarray]:
    """Stack equally padded images into the ``PREPROCESSED`` tensors."""
    if not prepared:
        raise BatchError('empty batch: the request holds no images')
    padded = sorted({p.tensor.shape[1:] for p in prepared})
    if len(padded) > 1:
        raise BatchError(
            f'mixed-size batch: its images pad to {sizes(padded)} (HxW), and '
            'one batch takes one padded size; send images of other sizes as '
            'separate requests (or to a model exported with --canvas)')
    return {'input': np.stack([p.tensor for p in prepared]),
            'img_shape': np.asarray([p.img_shape for p in prepared], np.float32),
            'scale_factor': np.asarray([p.scale_factor for p in prepared],
                                       np.float32),
            'ori_shape': np.asarray([p.ori_shape for p in prepared], np.float32)}
