"""Anchor regions around an attended location (paper, "Recurrent attention-aware module").

At every iteration t >= 1 the agent looks at k = len(sizes) * len(aspect_ratios) regions centred
at its location l_t, one per (scale, aspect ratio) pair, as the anchors of Faster R-CNN.

Coordinate conventions used across the project:

* A *location* l = (y, x) lives in the view's own frame, in [-1, 1] (-1 top/left, +1 bottom/right),
  the range in which the Gaussian policy with sigma 0.11 is defined.
* A *box* is (y1, x1, y2, x2) normalised to the feature map (and so to the input image), the
  convention of `tf.image.crop_and_resize`. A *view* is such a box; x1 > x2 marks a horizontally
  flipped view, which `crop_and_resize` samples mirrored.
* Anchor sizes are in input pixels, as in the paper (areas 80^2, 160^2, 320^2 at N = 512).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf


def anchor_shapes(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
    """Heights and widths of the k anchors, in pixels.

    Args:
      sizes: square roots of the anchor areas, in pixels (the paper's 80, 160, 320).
      aspect_ratios: width / height of each shape (the paper's 2:1, 1:1, 1:2 are 2.0, 1.0, 0.5).

    Returns:
      float32 [k, 2] of (height, width) in pixels, k = len(sizes) * len(aspect_ratios), ordered
      scale-major: all ratios of the first size, then the second size, ...; every row has
      area size**2 and width / height equal to its ratio.
    """
    if not sizes or not aspect_ratios:
        raise ValueError(
            f"need at least one anchor size and one aspect ratio, got "
            f"sizes={list(sizes)} aspect_ratios={list(aspect_ratios)}"
        )
    rows = []
    for size in sizes:
        for ratio in aspect_ratios:
            if size <= 0 or ratio <= 0:
                raise ValueError(
                    f"anchor sizes and aspect ratios must be > 0, got size={size} ratio={ratio}"
                )
            rows.append((size / math.sqrt(ratio), size * math.sqrt(ratio)))
    return np.asarray(rows, np.float32)


def location_to_point(locations: tf.Tensor, views: tf.Tensor) -> tf.Tensor:
    """Maps view-frame locations in [-1, 1] to feature-map coordinates in [0, 1].

    Args:
      locations: [E, 2] (y, x) in the view frame, in [-1, 1].
      views: [E, 4] view boxes (y1, x1, y2, x2), normalised to the feature map.

    Returns:
      [E, 2] (y, x) normalised to the feature map.
    """
    y1, x1, y2, x2 = tf.split(views, 4, axis=-1)
    start = tf.concat([y1, x1], axis=-1)
    extent = tf.concat([y2 - y1, x2 - x1], axis=-1)
    return start + (locations + 1.0) * 0.5 * extent


def _repeats(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Constant 0/1 matrices: [2, 4k] maps (y, x) to (y, x, y, x) for each of k anchors, and
    [4, 4k] repeats (y1, x1, y2, x2) k times. Products with them are exact (one term per
    column) and replace broadcasts: LiteRT's GPU accelerator computed `[1, 4] + const [k, 4]`
    (a TILE the converter folded) as k copies of row 0."""
    return np.tile(np.eye(2, dtype=np.float32), [1, 2 * k]), np.tile(
        np.eye(4, dtype=np.float32), [1, k]
    )


def anchor_boxes(locations: tf.Tensor, views: tf.Tensor, shapes: tf.Tensor) -> tf.Tensor:
    """The k anchor boxes centred at each location, clipped to the view.

    Clipping keeps every region inside the view (the image the agent was given), so a region at
    the border covers less than its nominal area instead of reading zero padding. Written in
    TFLite GPU-delegate ops (the exported graph calls it as it is): no broadcast of a runtime
    tensor against a larger constant, no strided slices, no boolean select.

    Args:
      locations: [E, 2] (y, x) in the view frame, in [-1, 1].
      views: [E, 4] view boxes (y1, x1, y2, x2) normalised to the feature map; x1 > x2 for a
        flipped view.
      shapes: [k, 2] (height, width) of the anchors as fractions of the input image, i.e.
        `anchor_shapes(...) / image_size`.

    Returns:
      [E, k, 4] boxes (y1, x1, y2, x2) normalised to the feature map; for a flipped view the
      x coordinates come out mirrored (x1 > x2) so the crop is mirrored too.
    """
    fixed_views = tf.get_static_value(views)
    views = tf.convert_to_tensor(views, tf.float32)
    shapes = tf.convert_to_tensor(shapes, tf.float32)
    k = shapes.shape[0]
    spread, repeat = _repeats(k)
    half = shapes / 2.0
    # cy + (-(h / 2)) is cy - h / 2 exactly: offsets of (y1, x1, y2, x2) from the centre.
    offsets = tf.reshape(tf.concat([-half, half], axis=-1), [1, 4 * k])
    corners = tf.matmul(location_to_point(locations, views), spread) + offsets  # [E, 4k]
    vy1, vx1, vy2, vx2 = tf.split(views, 4, axis=-1)  # [E, 1] each
    low = tf.concat([tf.minimum(vy1, vy2), tf.minimum(vx1, vx2)] * 2, axis=-1)  # [E, 4]
    high = tf.concat([tf.maximum(vy1, vy2), tf.maximum(vx1, vx2)] * 2, axis=-1)
    corners = tf.clip_by_value(corners, tf.matmul(low, repeat), tf.matmul(high, repeat))
    boxes = tf.reshape(corners, [-1, k, 4])
    if fixed_views is not None and not np.any(fixed_views[:, 1] > fixed_views[:, 3]):
        return boxes  # views known when tracing (the export's whole view), none flipped
    # A flipped view runs right to left: the anchor's left edge in the view frame is its
    # right edge on the map. Swapped by an arithmetic select with f in {0, 1} (exact).
    flipped = tf.cast(vx2 - vx1 + 1e-12 < 0.0, tf.float32)[:, None]  # [E, 1, 1]
    y1, x_lo, y2, x_hi = tf.split(boxes, 4, axis=-1)
    x1 = x_lo * (1.0 - flipped) + x_hi * flipped
    x2 = x_hi * (1.0 - flipped) + x_lo * flipped
    return tf.concat([y1, x1, y2, x2], axis=-1)
