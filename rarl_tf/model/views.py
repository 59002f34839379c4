"""Evaluation views as boxes on the feature map (paper, "Implementation details").

Ten-view evaluation crops the four corners and the centre, (N - m) x (N - m) each, and their
mirror images. The paper crops these on the conv5_3 map of the one N x N forward pass instead of
running the backbone ten times; a mirrored view is the same box with x1 > x2, which
`crop_and_resize` samples right to left. (Mirroring the map approximates the features of the
mirrored image: convolutions are not exactly mirror-equivariant.)
"""

from __future__ import annotations

import numpy as np

FULL_VIEW = np.array([[0.0, 0.0, 1.0, 1.0]], np.float32)


def ten_views(image_size: int, crop_margin: int) -> np.ndarray:
    """The ten views of an N x N image: [10, 4] (y1, x1, y2, x2) in [0, 1].

    Order: top-left, top-right, bottom-left, bottom-right, centre, then the same five mirrored.
    """
    if not 0 <= crop_margin < image_size:
        raise ValueError(
            f"crop_margin must be in [0, image_size), got {crop_margin} for image_size {image_size}"
        )
    side = (image_size - crop_margin) / image_size
    margin = crop_margin / image_size
    corners = [(0.0, 0.0), (0.0, margin), (margin, 0.0), (margin, margin), (margin / 2, margin / 2)]
    boxes = [(y, x, y + side, x + side) for y, x in corners]
    boxes += [(y1, x2, y2, x1) for y1, x1, y2, x2 in boxes]
    return np.asarray(boxes, np.float32)


def views_for(num_views: int, image_size: int, crop_margin: int) -> np.ndarray:
    """[V, 4] views: 1 is the whole image, 10 the paper's ten views."""
    if num_views == 1:
        return FULL_VIEW
    if num_views == 10:
        return ten_views(image_size, crop_margin)
    raise ValueError(f"views must be 1 or 10, got {num_views}")
