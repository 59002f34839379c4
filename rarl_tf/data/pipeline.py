"""tf.data pipelines: examples -> batches the model eats (paper, "Implementation details").

Training: decode, resize to N x N, random (N - m) x (N - m) crop, random horizontal flip.
Evaluation: decode, resize to N x N; views are boxes on the feature map (see `model/views.py`).
Pixels stay float32 in [0, 255]; each backbone does its own preprocessing.

Training reads a *stream*: pass after pass over the training split, each pass shuffled with its
own seed, and every image augmented with a seed made of `(seed, its index in the stream)`. The
stream is therefore a pure function of the seed, and `train_stream(..., start_step=s, ...)`
starts exactly where step s of an earlier run would have read, which is how a resumed run
continues mid-epoch.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from rarl_tf.config.experiment import DEFAULT_MAX_PIXELS, ExperimentConfig
from rarl_tf.data import image_header

AUTOTUNE = tf.data.AUTOTUNE


class SkipCounter:
    """Counts images that fail to decode, so a bad file costs one image, not the run.

    `undecodable` is exact at any moment: it counts the failed images *before* the last image
    delivered (images still being decoded in parallel are not counted yet), and once the
    dataset has been read to its end, all of them.
    """

    def __init__(self):
        self.delivered = tf.Variable(0, dtype=tf.int64, trainable=False, name="decode_delivered")
        # 1 + position of the last image delivered (the dataset's length once it is exhausted).
        self.reached = tf.Variable(0, dtype=tf.int64, trainable=False, name="decode_reached")

    @property
    def undecodable(self) -> int:
        return int(self.reached) - int(self.delivered)


def _image_name(position: tf.Tensor, example: dict) -> tf.Tensor:
    """What a warning calls the image: its file name if the source keeps one, else its place."""
    if "name" in example:
        return example["name"]
    if "index" in example:
        return tf.strings.join(["at stream index ", tf.strings.as_string(example["index"])])
    return tf.strings.join(["at position ", tf.strings.as_string(position)])


def decode(
    examples: tf.data.Dataset,
    counter: SkipCounter | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tf.data.Dataset:
    """Decodes `example["image"]` (JPEG, PNG, BMP or still WebP bytes) to uint8 [H, W, 3].

    Elements whose image does not decode, or whose header declares more than `max_pixels`
    pixels (refused before decoding, with one line naming the image on stderr), are dropped and
    counted in `counter`. Other keys, e.g. a stream index, pass through.
    """
    counter = counter or SkipCounter()
    # An end marker (a valid 1x1 PNG) follows the last example: when it leaves the decoder,
    # every example has been judged, so failures at the very end are counted too.
    end = examples.take(1).map(
        lambda ex: (True, {**ex, "image": tf.io.encode_png(tf.zeros([1, 1, 3], tf.uint8))})
    )
    positioned = examples.map(lambda ex: (False, ex)).concatenate(end).enumerate()

    def decode_one(position, marked):
        is_end, example = marked
        image = image_header.decode(example["image"], max_pixels, _image_name(position, example))
        return position, is_end, {**example, "image": image}

    def count(position, is_end, example):
        # The marker's position is the number of examples before it.
        reached = counter.reached.assign(tf.where(is_end, position, position + 1))
        delivered = counter.delivered.assign_add(tf.cast(tf.logical_not(is_end), tf.int64))
        with tf.control_dependencies([reached, delivered]):
            return is_end, tf.nest.map_structure(tf.identity, example)

    ds = positioned.map(decode_one, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors(log_warning=True)
    # Sequential, so `reached` and `delivered` move together.
    ds = ds.map(count)
    return ds.filter(lambda is_end, _: tf.logical_not(is_end)).map(lambda _, example: example)


def is_labeled(example) -> tf.Tensor:
    """True if the example has at least one positive label."""
    return tf.reduce_any(example["labels"] > 0)


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


def _indexed_stream(
    examples: tf.data.Dataset,
    pass_size: int,
    first: int,
    last: int,
    shuffle_buffer: int,
    seed: int,
) -> tf.data.Dataset:
    """(stream index, example) pairs for stream positions `first` up to `last` (exclusive),
    each pass over `examples` reshuffled with a seed of its own, and one pass more than the
    positions need: it stands in for images that fail to decode."""

    def one_pass(pass_index: int) -> tf.data.Dataset:
        # A Python int seed: tf.data's shuffle does not take a tensor seed.
        shuffled = examples.shuffle(
            shuffle_buffer, seed=seed * 1_000_003 + pass_index, reshuffle_each_iteration=False
        )
        # Stream indices: an image's augmentation depends only on where in the stream it is.
        indices = tf.data.Dataset.range(pass_index * pass_size, (pass_index + 1) * pass_size)
        return tf.data.Dataset.zip(indices, shuffled)

    passes = [one_pass(p) for p in range(first // pass_size, (last - 1) // pass_size + 2)]
    stream = passes[0]
    for more in passes[1:]:
        stream = stream.concatenate(more)
    return stream.skip(first % pass_size)


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """What the training stream takes from a run's config (`from_config` is the one place it is
    read): the global batch size B, the model's N and m, the seed, the shuffle buffer and the
    pixel limit."""

    batch_size: int
    image_size: int
    crop_margin: int
    seed: int
    shuffle_buffer: int = 2048
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> StreamSettings:
        m, t, d = config.model, config.train, config.data
        # In the fields' order.
        return cls(
            t.batch_size, m.image_size, m.crop_margin, t.seed, d.shuffle_buffer, d.max_pixels
        )


def train_stream(
    examples: tf.data.Dataset,
    settings: StreamSettings,
    pass_size: int,
    start_step: int,
    total_steps: int,
    counter: SkipCounter | None = None,
) -> tf.data.Dataset:
    """Training batches from global step `start_step` up to `total_steps`.

    Args:
      examples: the training examples (labeled images only, encoded) in a fixed order; every
        pass reshuffles them with a seed of its own.
      settings: the run's batch size, image size, crop margin, seed, buffer and pixel limit.
      pass_size: number of examples in `examples`.
      start_step: global step to start at (0 for a new run; the checkpoint's step on resume).
      total_steps: the run's last step; the stream ends there.

    Returns:
      (images [B, N - m, N - m, 3] float32, labels [B, C] float32); `total_steps - start_step`
      batches. Images that fail to decode or are over `settings.max_pixels` are skipped (and
      counted in `counter`); the images after them fill their places, so the run still makes
      its configured number of steps.
    """
    batch_size, seed = settings.batch_size, settings.seed
    if pass_size < batch_size:
        raise ValueError(
            f"the training split has {pass_size} usable images, fewer than one batch "
            f"(--batch_size={batch_size})"
        )
    first = start_step * batch_size
    stream = _indexed_stream(
        examples, pass_size, first, total_steps * batch_size, settings.shuffle_buffer, seed
    )
    stream = stream.map(lambda index, example: {**example, "index": index})

    def prepare(example):
        seed_pair = tf.stack([tf.constant(seed, tf.int64), example["index"]])
        image = augment(example["image"], seed_pair, settings.image_size, settings.crop_margin)
        return image, example["labels"]

    ds = decode(stream, counter, settings.max_pixels).map(
        prepare, num_parallel_calls=AUTOTUNE, deterministic=True
    )
    # drop_remainder: every step sees the same global batch, which tf.distribute needs to split.
    ds = ds.batch(batch_size, drop_remainder=True).take(total_steps - start_step)
    return ds.prefetch(AUTOTUNE)


def with_ids(examples: tf.data.Dataset) -> tf.data.Dataset:
    """`examples` with an "id" each: its file name where the source keeps one, else
    "position N" (its place in `examples`), so a dropped image can be named afterwards."""

    def add_id(position, example):
        name = (
            example["name"]
            if "name" in example
            else tf.strings.join(["position ", tf.strings.as_string(position)])
        )
        return {**example, "id": name}

    return examples.enumerate().map(add_id)


def eval_batches(
    examples: tf.data.Dataset,
    image_size: int,
    batch_size: int,
    counter: SkipCounter | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    ids: bool = False,
) -> tf.data.Dataset:
    """(images [B, N, N, 3] float32, labels [B, C], ignore [B, C] bool), in dataset order;
    with `ids`, a fourth element: the images' ids [B] string (`with_ids`).

    Images that do not decode or are over `max_pixels` are left out (see `decode`)."""
    if ids:
        examples = with_ids(examples)
    ds = decode(examples, counter, max_pixels).map(
        lambda ex: (
            resize(ex["image"], image_size),
            ex["labels"],
            ex["ignore"],
            *((ex["id"],) if ids else ()),
        ),
        num_parallel_calls=AUTOTUNE,
    )
    return ds.batch(batch_size).prefetch(AUTOTUNE)
