"""Drawing detections: a colour per class, the class name and score on each box."""
from __future__ import annotations

import colorsys
from typing import Tuple

from PIL import Image, ImageDraw, ImageFont

from ..wire import Detections


def class_colour(label: int) -> Tuple[int, int, int]:
    """Well-separated, stable hues: the golden-ratio walk around the wheel."""
    r, g, b = colorsys.hsv_to_rgb((label * 0.618033988749895) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(image: Image.Image, dets: Detections,
                    score_thr: float = 0.3) -> Image.Image:
    """A copy of ``image`` with every detection above ``score_thr`` drawn."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    line = max(2, round(min(out.size) / 300))
    font = ImageFont.load_default(size=max(12, round(min(out.size) / 40)))
    keep = dets.scores > score_thr
    for box, score, label, name in zip(
            dets.boxes[keep], dets.scores[keep], dets.labels[keep],
            (dets.names if dets.names is not None
             else dets.labels.astype(str))[keep]):
        colour = class_colour(int(label))
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        text = f'{name} {score:.2f}'
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        lift = bottom - top + 2 * line
        ty = y1 - lift if y1 - lift >= 0 else y1  # above the box if it fits
        draw.rectangle((x1, ty, x1 + right - left + 2 * line, ty + lift),
                       fill=colour)
        draw.text((x1 + line, ty + line - (top - y1)), text, fill=(0, 0, 0),
                  font=font)
    return out
