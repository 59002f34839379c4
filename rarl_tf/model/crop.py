"""Region features: the paper's operator G (eq. 1), a crop of the feature map followed by
bilinear resampling to a fixed s x s.

Two implementations of the same function:

* `crop_regions` is `tf.image.crop_and_resize`: used for training, evaluation and serving.
* `crop_regions_matmul` writes the same bilinear sampling as two interpolation-weight matrices
  (Wy [K, s, h], Wx [K, s, w]) multiplied into the map. It is made of MatMul-style builtins only,
  so it converts to TFLite without Flex ops and compiles under XLA, where `crop_and_resize` has
  neither a builtin nor an XLA kernel. Tests hold the two equal.
"""

from __future__ import annotations

import tensorflow as tf


def crop_regions(
    features: tf.Tensor, boxes: tf.Tensor, box_indices: tf.Tensor, crop_size: int
) -> tf.Tensor:
    """Bilinear crop-and-resize of regions of a feature map.

    Args:
      features: [B, h, w, C] feature map.
      boxes: [K, 4] (y1, x1, y2, x2) normalised so that 0 and 1 are the centres of the first and
        last cells (`tf.image.crop_and_resize`'s convention); y1 > y2 or x1 > x2 mirror the crop.
      box_indices: [K] int32, the batch row each box reads from.
      crop_size: s, the side of the output grid.

    Returns:
      [K, s, s, C] region features; samples that fall outside the map are 0.
    """
    return tf.image.crop_and_resize(
        features,
        boxes,
        box_indices,
        (crop_size, crop_size),
        method="bilinear",
        extrapolation_value=0.0,
    )


def _interpolation_weights(
    start: tf.Tensor, end: tf.Tensor, size: int, crop_size: int
) -> tf.Tensor:
    """Bilinear weights of `crop_size` samples between `start` and `end` along an axis.

    Args:
      start, end: [K, 1] normalised coordinates of the box edges on this axis.
      size: number of cells of the map along this axis.
      crop_size: number of samples.

    Returns:
      [K, crop_size, size]: row i holds the weights with which sample i mixes the map's cells.
    """
    scale = float(size - 1)
    if crop_size > 1:
        steps = tf.range(crop_size, dtype=tf.float32)[None, :] / float(crop_size - 1)
        pos = (start + steps * (end - start)) * scale  # [K, s]
    else:
        pos = 0.5 * (start + end) * scale
    cells = tf.range(size, dtype=tf.float32)[None, None, :]
    weights = tf.nn.relu(1.0 - tf.abs(pos[:, :, None] - cells))  # triangle kernel = bilinear
    # crop_and_resize writes the extrapolation value (0) for a sample outside the map; the
    # triangle kernel alone would still give it partial weight from the border cell.
    inside = tf.cast((pos >= 0.0) & (pos <= scale), tf.float32)
    return weights * inside[:, :, None]


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
    h, w = features.shape[1], features.shape[2]
    if h is None or w is None:
        raise ValueError(
            f"crop_regions_matmul needs a static feature-map size, got {features.shape}"
        )
    y1, x1, y2, x2 = tf.split(boxes, 4, axis=-1)
    wy = _interpolation_weights(y1, y2, h, crop_size)  # [K, s, h]
    wx = _interpolation_weights(x1, x2, w, crop_size)  # [K, s, w]
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
