"""Label rules shared by the loaders: multi-hot labels, and VOC's "difficult" -> ignore rule.

Written with TensorFlow ops, so one function serves a tf.data map (tensorflow-datasets' voc/2007)
and a folder read in Python (`voc_dir`, called eagerly on NumPy arrays).
"""

from __future__ import annotations

import tensorflow as tf


def multi_hot(indices, num_classes: int) -> tf.Tensor:
    """Object class indices [n] -> multi-hot float32 [C] (all zero when n == 0)."""
    # A sum, not a max: the max over zero objects would be -inf.
    counts = tf.reduce_sum(tf.one_hot(indices, num_classes, dtype=tf.float32), axis=0)
    return tf.cast(counts > 0, tf.float32)


def voc_labels(object_labels, is_difficult, num_classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """One VOC image's objects -> (labels [C] float32 multi-hot, ignore [C] bool).

    Args:
      object_labels: [n] int class index of each object.
      is_difficult: [n] bool, the object's `<difficult>` flag.

    Labels come from all objects; `ignore` marks classes whose objects are all difficult, which
    the VOC devkit leaves out of AP.
    """
    labels = multi_hot(object_labels, num_classes)
    easy = multi_hot(tf.boolean_mask(object_labels, tf.logical_not(is_difficult)), num_classes)
    return labels, (labels > 0) & (easy == 0)
