"""Attended regions drawn on the image, one colour per iteration (the paper's Figure 2)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# One colour per iteration t = 1..T (cycled for T > 10): tab10.
ITERATION_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                     (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
                     (188, 189, 34), (23, 190, 207))


def draw_attention(image: Image.Image, boxes: np.ndarray, locations: np.ndarray | None = None,
                   min_side: int = 384) -> Image.Image:
    """Draws the regions of every iteration on a copy of `image`.

    Args:
      image: the original image (any size; upscaled to at least `min_side` so boxes stay legible).
      boxes: [T, k, 4] (y1, x1, y2, x2) normalised to the image (x1 > x2 for a mirrored view is
        drawn unmirrored).
      locations: optional [T, 2] attended centres (y, x) normalised to the image, drawn as dots
        labelled with the iteration number.

    Returns:
      An RGB image with the boxes of iteration t in `ITERATION_COLOURS[t - 1]`.
    """
    canvas = image.convert("RGB")
    scale = max(1.0, min_side / min(canvas.size))
    if scale > 1.0:
        canvas = canvas.resize((round(canvas.width * scale), round(canvas.height * scale)),
                               Image.NEAREST)
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
