"""Attended regions drawn on the image, one colour per iteration (the paper's Figure 2)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# One colour per iteration t = 1..T (cycled for T > 10): tab10.
ITERATION_COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


# The longest side a picture may have: a 1 x 20000 image upscaled to a 384 px short side would
# be 7,680,000 px long (44 GB at 1 x 100000); the long side's cap wins over the short side's.
MAX_SIDE = 4096


def picture_size(
    width: int, height: int, min_side: int, max_side: int = MAX_SIDE
) -> tuple[int, int]:
    """(width, height) of the picture of a `width` x `height` image: short side upscaled to
    `min_side` where that keeps the long side within `max_side`, else the long side at
    `max_side`; each side at least 1 px."""
    scale = min(max(1.0, min_side / min(width, height)), max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def draw_attention(
    image: Image.Image,
    boxes: np.ndarray,
    locations: np.ndarray | None = None,
    min_side: int = 384,
    max_side: int = MAX_SIDE,
) -> Image.Image:
    """Draws the regions of every iteration on a copy of `image`.

    Args:
      image: the original image (any size; resized by `picture_size`: upscaled to at least
        `min_side` so boxes stay legible, never longer than `max_side`).
      boxes: [T, k, 4] (y1, x1, y2, x2) normalised to the image (x1 > x2 for a mirrored view is
        drawn unmirrored).
      locations: optional [T, 2] attended centres (y, x) normalised to the image, drawn as dots
        labelled with the iteration number.

    Returns:
      An RGB image with the boxes of iteration t in `ITERATION_COLOURS[t - 1]`.
    """
    canvas = image.convert("RGB")
    size = picture_size(canvas.width, canvas.height, min_side, max_side)
    if size != canvas.size:
        canvas = canvas.resize(size, Image.NEAREST)
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    for t, step_boxes in enumerate(np.asarray(boxes)):
        colour = ITERATION_COLOURS[t % len(ITERATION_COLOURS)]
        for y1, x1, y2, x2 in step_boxes:
            left, right = sorted((x1 * width, x2 * width))
            top, bottom = sorted((y1 * height, y2 * height))
            draw.rectangle((left, top, right, bottom), outline=colour, width=2)
        if locations is not None:
            cy, cx = locations[t][0] * height, locations[t][1] * width
            draw.ellipse((cx - 5, cy - 5, cx + 5, cy + 5), fill=colour)
            draw.text((cx + 7, cy - 7), str(t + 1), fill=colour)
    return canvas
