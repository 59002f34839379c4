"""tf.data pipelines: examples -> batches the model eats (paper, "Implementation details").

Training: resize to N x N, random (N - m) x (N - m) crop, random horizontal flip.
Evaluation: resize to N x N; views are boxes on the feature map (see `model/views.py`).
Pixels stay float32 in [0, 255]; each backbone does its own preprocessing.
"""

from __future__ import annotations

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
    # antialias: the embedded default shrinks 128 px canvases; without it thin strokes alias away.
    return tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size), antialias=True)


def augment(image: tf.Tensor, seed: tf.Tensor, image_size: int, crop_margin: int) -> tf.Tensor:
    """[H, W, 3] uint8 -> [N - m, N - m, 3] float32: resize, random crop, random flip.

    Args:
      seed: int [2], a stateless seed, so a run is repeatable for `--seed`.
    """
    side = image_size - crop_margin
    image = resize(image, image_size)
    image = tf.image.stateless_random_crop(image, (side, side, 3), seed=seed)
    return tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])


def train_batches(examples: tf.data.Dataset, image_size: int, crop_margin: int,
                  batch_size: int, seed: int, shuffle_buffer: int = 2048) -> tf.data.Dataset:
    """(images [B, N - m, N - m, 3] float32, labels [B, C] float32), shuffled, one epoch."""
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, seeds)).map(
        lambda ex, s: (augment(ex["image"], s, image_size, crop_margin), ex["labels"]),
        num_parallel_calls=AUTOTUNE, deterministic=True)
    # drop_remainder: every step sees the same global batch, which tf.distribute needs to split.
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def eval_batches(examples: tf.data.Dataset, image_size: int, batch_size: int) -> tf.data.Dataset:
    """(images [B, N, N, 3] float32, labels [B, C], ignore [B, C] bool), in dataset order."""
    ds = examples.map(lambda ex: (resize(ex["image"], image_size), ex["labels"], ex["ignore"]),
                      num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
