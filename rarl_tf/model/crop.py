"""Region features: the paper's operator G (eq. 1), a crop of the feature map followed by
bilinear resampling to a fixed s x s.

One crop, three implementations of it, each where the others cannot go:

* `crop_regions` is `tf.image.crop_and_resize`: used for training, evaluation and serving.
* `crop_regions_matmul` writes the same bilinear sampling as two interpolation-weight matrices
  (Wy [K, s, h], Wx [K, s, w]) multiplied into the map. It is made of MatMul-style builtins only,
  so it converts to TFLite without Flex ops and compiles under XLA, where `crop_and_resize` has
  neither a builtin nor an XLA kernel.
* `crop_one_image` / `crop_constant` are the exported graph's form (one image, TFLite GPU
  delegate ops): ONE product of the outer-product weights `crop_weights` [K*s*s, h*w] with the
  map [h*w, C].

All three first keep every box `EDGE` inside the map (`inside_map`), so a sample never lies
outside it: crop_and_resize computes a sample's position as y1 (h - 1) + i (y2 - y1) (h - 1) /
(s - 1), which float32 rounds past h - 1 for some boxes ending exactly on the map's edge, and
then writes its extrapolation value (0) where the matrix forms read the edge cell (up to 2.9
apart at 14 samples of an 8-cell map; 2-4 % of edge-clipped anchor boxes at the recipes' sizes).
The model never crops outside the map (views lie in it, anchors are clipped to their view), so
the nudge only moves box edges on the map's border by EDGE. Tests hold the three equal to
`tf.image.crop_and_resize` of boxes inside the map (`tests/model/test_crop.py`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# How far inside the map box edges are kept: crop_and_resize's position arithmetic errs by
# a few float32 ulps of h - 1, i.e. < 3e-7 (h - 1); an emulation of its arithmetic (with and
# without a fused multiply-add) put no sample outside the map from 1e-7 up, for h <= 64 and
# s <= 32. 1e-6 moves a sample by at most 1e-6 (h - 1) cells (4e-5 at a 40-cell map).
EDGE = 1e-6


def inside_map(boxes: tf.Tensor) -> tf.Tensor:
    """Boxes [K, 4] clipped to [EDGE, 1 - EDGE]: every crop's first step (module docstring)."""
    return tf.clip_by_value(boxes, EDGE, 1.0 - EDGE)


def crop_regions(
    features: tf.Tensor, boxes: tf.Tensor, box_indices: tf.Tensor, crop_size: int
) -> tf.Tensor:
    """Bilinear crop-and-resize of regions of a feature map.

    Args:
      features: [B, h, w, C] feature map.
      boxes: [K, 4] (y1, x1, y2, x2) normalised so that 0 and 1 are the centres of the first and
        last cells (`tf.image.crop_and_resize`'s convention); y1 > y2 or x1 > x2 mirror the crop.
        Clipped to the map (`inside_map`) first.
      box_indices: [K] int32, the batch row each box reads from.
      crop_size: s, the side of the output grid.

    Returns:
      [K, s, s, C] region features.
    """
    return tf.image.crop_and_resize(
        features,
        inside_map(boxes),
        box_indices,
        (crop_size, crop_size),
        method="bilinear",
        extrapolation_value=0.0,
    )


def interpolation_weights(start: tf.Tensor, end: tf.Tensor, size: int, crop_size: int) -> tf.Tensor:
    """Bilinear weights of `crop_size` samples between `start` and `end` along an axis.

    Written in TFLite GPU-delegate ops (the exported graph uses it as it is): every repeat is
    a TILE of the runtime tensor, never a broadcast of a smaller runtime tensor against a
    larger one (LiteRT's GPU accelerator computed such broadcasts wrongly).

    Args:
      start, end: [K, 1] normalised coordinates of the box edges on this axis, inside the map.
      size: number of cells of the map along this axis.
      crop_size: number of samples.

    Returns:
      [K, crop_size, size]: row i holds the weights with which sample i mixes the map's cells.
    """
    scale = float(size - 1)
    if crop_size > 1:
        steps = tf.range(crop_size, dtype=tf.float32)[None, :] / float(crop_size - 1)
        start_t = tf.tile(start, [1, crop_size])
        pos = (start_t + steps * (tf.tile(end, [1, crop_size]) - start_t)) * scale  # [K, s]
    else:
        pos = 0.5 * (start + end) * scale
    # Clamped, not masked: a position rounded just past the edge reads the edge cell.
    pos = tf.minimum(tf.nn.relu(pos), scale)
    cells = tf.range(size, dtype=tf.float32)[None, None, :]
    spread = tf.tile(tf.reshape(pos, [-1, crop_size, 1]), [1, 1, size])
    return tf.nn.relu(1.0 - tf.abs(spread - cells))  # triangle kernel = bilinear


def crop_regions_matmul(
    features: tf.Tensor, boxes: tf.Tensor, box_indices: tf.Tensor | None, crop_size: int
) -> tf.Tensor:
    """`crop_regions` as two matrix products (TFLite builtins only, XLA-compilable).

    Args:
      features: [B, h, w, C] feature map with static h and w.
      boxes: [K, 4] as in `crop_regions`.
      box_indices: [K] int32 batch rows, or None when the boxes come grouped by image, K / B
        each: box i reads image i // (K / B). Grouped boxes need no gather of a map per box
        (K copies of [h, w, C]): each image's map is multiplied by all its boxes' weights at
        once, which is what makes this crop fast in training, and with B == 1 it keeps the
        exported graph free of GATHER and batched products.
      crop_size: s.

    Returns:
      [K, s, s, C], equal to `crop_regions` up to float rounding.
    """
    h, w = _static_size(features)
    if box_indices is None and features.shape[0] == 1 and boxes.shape[0] is not None:
        # One image, a known number of boxes (the exported graph): one product.
        return crop_one_image(features, boxes, crop_size)
    y1, x1, y2, x2 = tf.split(inside_map(boxes), 4, axis=-1)
    wy = interpolation_weights(y1, y2, h, crop_size)  # [K, s, h]
    wx = interpolation_weights(x1, x2, w, crop_size)  # [K, s, w]
    c = features.shape[-1]
    if box_indices is not None:
        fmap = tf.gather(features, box_indices)  # [K, h, w, C]
        rows = tf.einsum("kih,khwc->kiwc", wy, fmap)
    elif features.shape[0] == 1:
        # One image: every box reads the same map, so fold channels into one 2-D product.
        rows = tf.reshape(
            tf.matmul(tf.reshape(wy, [-1, h]), tf.reshape(features[0], [h, -1])),
            [-1, crop_size, w, c],
        )  # [K, s, w, C]
    else:
        batch = tf.shape(features)[0]
        # [B, K/B * s, h] x [B, h, w * C]: one product per image for all of its boxes.
        rows = tf.matmul(tf.reshape(wy, [batch, -1, h]), tf.reshape(features, [batch, h, -1]))
        rows = tf.reshape(rows, [-1, crop_size, w, c])  # [K, s, w, C]
    return tf.einsum("kjw,kiwc->kijc", wx, rows)


def _static_size(features) -> tuple[int, int]:
    h, w = features.shape[1], features.shape[2]
    if h is None or w is None:
        raise ValueError(f"the matrix crops need a static feature-map size, got {features.shape}")
    return h, w


def _expansions(h: int, w: int):
    """Constant 0/1 matrices [h, h*w] and [w, h*w]: cell (y, x) is column y * w + x."""
    ey = np.zeros((h, h * w), np.float32)
    ex = np.zeros((w, h * w), np.float32)
    for y in range(h):
        for x in range(w):
            ey[y, y * w + x] = 1.0
            ex[x, y * w + x] = 1.0
    return tf.constant(ey), tf.constant(ex)


def crop_weights(boxes: tf.Tensor, h: int, w: int, crop_size: int) -> tf.Tensor:
    """[K, s * s, h * w]: the weight of sample (i, j) of box r on map cell (y, x),
    Wy[r, i, y] * Wx[r, j, x], formed with constant 0/1 expansions, a TILE and a MUL (no
    rank-5 tensor, no broadcast of a runtime tensor: GPU-delegate ops)."""
    k, s = boxes.shape[0], crop_size
    y1, x1, y2, x2 = tf.split(inside_map(boxes), 4, axis=-1)
    wy = interpolation_weights(y1, y2, h, s)  # [K, s, h]
    wx = interpolation_weights(x1, x2, w, s)  # [K, s, w]
    ey, ex = _expansions(h, w)
    wy_hw = tf.reshape(tf.matmul(tf.reshape(wy, [k * s, h]), ey), [k, s, 1, h * w])
    wx_hw = tf.reshape(tf.matmul(tf.reshape(wx, [k * s, w]), ex), [k, 1, s, h * w])
    return tf.reshape(tf.tile(wy_hw, [1, 1, s, 1]) * wx_hw, [k, s * s, h * w])


def crop_one_image(features: tf.Tensor, boxes: tf.Tensor, crop_size: int) -> tf.Tensor:
    """`crop_regions` of boxes [K, 4] (static K) from ONE image's map [1, h, w, C] as one
    matrix product W [1, K*s*s, h*w] @ F [1, h*w, C] (a right-hand side the GPU kernel of
    BATCH_MATMUL computes correctly): [K, s, s, C]. Boxes known when tracing take
    `crop_constant`."""
    fixed = tf.get_static_value(boxes)
    if fixed is not None:
        return crop_constant(features, fixed, crop_size)
    h, w = _static_size(features)
    k, c = boxes.shape[0], features.shape[-1]
    weights = crop_weights(boxes, h, w, crop_size)
    out = tf.matmul(
        tf.reshape(weights, [1, k * crop_size * crop_size, h * w]),
        tf.reshape(features, [1, h * w, c]),
    )
    return tf.reshape(out, [k, crop_size, crop_size, c])


def crop_constant(features: tf.Tensor, boxes: np.ndarray, crop_size: int) -> tf.Tensor:
    """`crop_one_image` for boxes known when tracing: F^T [C, h*w] @ W^T [h*w, K*s*s] with
    constant weights (a FULLY_CONNECTED once exported), transposed back: [K, s, s, C]."""
    h, w = _static_size(features)
    k, c = len(boxes), features.shape[-1]
    with tf.init_scope():  # eager even while tracing: the weights become a constant
        weights = crop_weights(tf.constant(boxes, tf.float32), h, w, crop_size).numpy()
    weights_t = tf.constant(weights.reshape(k * crop_size * crop_size, h * w).T)
    flat_t = tf.transpose(tf.reshape(features, [h * w, c]))  # [C, h*w]
    out = tf.transpose(tf.matmul(flat_t, weights_t))  # [K*s*s, C]
    return tf.reshape(out, [k, crop_size, crop_size, c])
