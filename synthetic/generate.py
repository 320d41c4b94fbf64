"""A synthetic detection dataset in COCO format, deterministic by seed.

Why: no COCO images or weights can be downloaded where this project is built,
yet the demo must show boxes that sit on objects, and accuracy parity must be
measured by mAP. Shapes of several classes, sizes, colours and aspect ratios
are drawn on textured, noisy backgrounds and may partly hide each other. Each
box is the tight box of the object's *visible* pixels, so it is exact.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np

CLASSES = ('circle', 'rectangle', 'triangle', 'star', 'cross')


@dataclass(frozen=True)
class Spec:
    size: Tuple[int, int] = (320, 256)       # (width, height) of each image
    objects: Tuple[int, int] = (1, 6)        # objects per image, inclusive
    extent: Tuple[int, int] = (22, 110)      # object size in pixels
    min_visible: float = 0.6                 # of an object's own area


def _polygon(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-size outline of a shape centred on the origin."""
    if kind == 'triangle':
        angles = np.deg2rad([90, 210, 330]) + rng.uniform(-0.3, 0.3, 3)
        return np.stack([np.cos(angles), -np.sin(angles)], 1)
    if kind == 'star':
        angles = np.linspace(0, 2 * np.pi, 11)[:-1] + np.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        return np.stack([radii * np.cos(angles), -radii * np.sin(angles)], 1)
    if kind == 'cross':
        t = rng.uniform(0.25, 0.4)
        return np.array([[-t, -1], [t, -1], [t, -t], [1, -t], [1, t], [t, t],
                         [t, 1], [-t, 1], [-t, t], [-1, t], [-1, -t], [-t, -t]])
    return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)  # rectangle


def _draw_shape(mask: np.ndarray, kind: str, centre, half_w: float,
                half_h: float, angle: float, rng: np.random.Generator) -> None:
    if kind == 'circle':
        cv2.ellipse(mask, (int(centre[0]), int(centre[1])),
                    (int(half_w), int(half_h)), np.rad2deg(angle), 0, 360, 1, -1)
        return
    points = _polygon(kind, rng) * [half_w, half_h]
    rotation = np.array([[np.cos(angle), -np.sin(angle)],
                         [np.sin(angle), np.cos(angle)]])
    points = points @ rotation.T + centre
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Low-frequency colour noise, stripes or a checker, plus pixel noise."""
    coarse = rng.integers(0, 256, (rng.integers(2, 8), rng.integers(2, 8), 3))
    image = cv2.resize(coarse.astype(np.uint8), (width, height),
                       interpolation=cv2.INTER_CUBIC).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    pattern = rng.integers(0, 3)
    period = rng.uniform(6, 30)
    if pattern == 0:
        theta = rng.uniform(0, np.pi)
        wave = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) / period * 2 * np.pi)
    elif pattern == 1:
        wave = np.sign(np.sin(xx / period * np.pi) * np.sin(yy / period * np.pi))
    else:
        wave = np.zeros_like(xx, dtype=float)
    image += (wave * rng.uniform(10, 40))[..., None]
    image += rng.normal(0, rng.uniform(4, 16), image.shape)
    return image


def render(rng: np.random.Generator, spec: Spec) -> Tuple[np.ndarray, List[dict]]:
    """One BGR image and its objects (class index, visible tight box)."""
    width, height = spec.size
    image = _background(rng, width, height)
    owner = np.full((height, width), -1, np.int32)  # topmost object per pixel
    placed: List[dict] = []
    for index in range(rng.integers(spec.objects[0], spec.objects[1] + 1)):
        label = int(rng.integers(len(CLASSES)))
        extent = rng.uniform(*spec.extent)
        aspect = rng.uniform(0.6, 1.6)
        half_w, half_h = extent / 2 * np.sqrt(aspect), extent / 2 / np.sqrt(aspect)
        centre = rng.uniform([half_w * 0.6, half_h * 0.6],
                             [width - half_w * 0.6, height - half_h * 0.6])
        angle = rng.uniform(0, np.pi) if CLASSES[label] != 'circle' else 0.0
        mask = np.zeros((height, width), np.uint8)
        _draw_shape(mask, CLASSES[label], centre, half_w, half_h, angle, rng)
        if mask.sum() < 64:
            continue
        colour = rng.integers(0, 256, 3).astype(np.float32)
        shade = 1 + rng.normal(0, 0.08, (height, width, 1))  # some texture
        image = np.where(mask[..., None] > 0, colour * shade, image)
        owner[mask > 0] = index
        placed.append({'index': index, 'label': label, 'area': int(mask.sum())})
    objects = []
    for obj in placed:
        ys, xs = np.nonzero(owner == obj['index'])
        if len(xs) < spec.min_visible * obj['area']:
            continue  # mostly hidden: not a fair target
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        objects.append({'label': obj['label'],
                        'bbox': [float(x1), float(y1), float(x2 - x1),
                                 float(y2 - y1)],
                        'area': float(len(xs))})
    image += rng.normal(0, 3, image.shape)  # sensor noise over everything
    return np.clip(image, 0, 255).astype(np.uint8), objects


def write_split(out: Path, split: str, count: int, seed: int,
                spec: Spec = Spec(),
                progress: Callable[[int], None] = lambda n: None) -> Path:
    """Images under ``out/split/`` and ``out/annotations/split.json``."""
    rng = np.random.default_rng(seed)
    (out / split).mkdir(parents=True, exist_ok=True)
    (out / 'annotations').mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(count):
        image, objects = render(rng, spec)
        name = f'{split}_{image_id:05d}.jpg'
        cv2.imwrite(str(out / split / name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({'id': image_id, 'file_name': name,
                       'width': spec.size[0], 'height': spec.size[1]})
        for obj in objects:
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id,
                                'category_id': obj['label'], 'bbox': obj['bbox'],
                                'area': obj['area'], 'iscrowd': 0})
        progress(1)
    coco: Dict = {'images': images, 'annotations': annotations,
                  'categories': [{'id': i, 'name': n} for i, n in enumerate(CLASSES)]}
    path = out / 'annotations' / f'{split}.json'
    path.write_text(json.dumps(coco))
    return path
