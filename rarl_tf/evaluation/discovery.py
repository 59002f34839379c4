"""Object discovery: how many ground-truth objects the attended regions find.

A ground-truth object counts as discovered by an image's regions
  - "iou50": if some region overlaps it with IoU >= 0.5;
  - "centre_inside": if the centre of some region lies inside it.
Boxes are (y1, x1, y2, x2) normalised to the image, as the model's `boxes` output and the
pictures of `visualize.py` take them (a mirrored box, x1 > x2, is read unmirrored).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def _ordered(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate(
        [np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], axis=1
    )


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of a [N, 4] with every box of b [M, 4] -> [N, M]."""
    a, b = _ordered(a), _ordered(b)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def centres_inside(regions: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """[N, M] bool: the centre of region n lies inside object m (edges included)."""
    regions, objects = _ordered(regions), _ordered(objects)
    centres = (regions[:, :2] + regions[:, 2:]) / 2
    return np.all(
        (centres[:, None] >= objects[None, :, :2]) & (centres[:, None] <= objects[None, :, 2:]),
        axis=-1,
    )


def discovery_rates(regions: Iterable[np.ndarray], objects: Iterable[np.ndarray]) -> dict:
    """Fractions of ground-truth objects discovered, over a set of images.

    Args:
      regions: per image, the attended regions [R, 4] (all iterations and anchors).
      objects: per image, the ground-truth boxes [n, 4].

    Returns:
      {"iou50": fraction, "centre_inside": fraction, "objects": number of objects}.
    """
    found_iou = found_centre = total = 0
    for image_regions, image_objects in zip(regions, objects):
        image_objects = np.asarray(image_objects).reshape(-1, 4)
        if not len(image_objects):
            continue
        total += len(image_objects)
        image_regions = np.asarray(image_regions).reshape(-1, 4)
        if not len(image_regions):
            continue
        found_iou += int(np.any(box_iou(image_regions, image_objects) >= 0.5, axis=0).sum())
        found_centre += int(np.any(centres_inside(image_regions, image_objects), axis=0).sum())
    if total == 0:
        raise ValueError("discovery_rates needs at least one ground-truth object")
    return {"iou50": found_iou / total, "centre_inside": found_centre / total, "objects": total}
