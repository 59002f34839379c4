"""Data sources: a name -> examples `{"image": uint8 [H, W, 3], "labels": float32 [C],
"ignore": bool [C]}` and the class names.

`ignore` marks classes to leave out of AP for that image (VOC's "difficult"-only classes); it is
all False where a dataset defines no such thing.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow as tf
import tensorflow_datasets as tfds


@dataclasses.dataclass(frozen=True)
class Source:
    """How to read one dataset.

    Attributes:
      class_names: the C label names, in label-index order.
      train_split / eval_split: split names as the loader understands them.
      load: (split, data_dir, shuffle_files, seed) -> tf.data.Dataset of examples.
    """

    class_names: tuple[str, ...]
    train_split: str
    eval_split: str
    load: Callable[[str, str | None, bool, int], tf.data.Dataset]


def _cluttered_digits(config_name: str):
    def load(split: str, data_dir: str | None, shuffle_files: bool, seed: int):
        return _load_cluttered_digits(config_name, split, data_dir, shuffle_files, seed)
    return load


def _load_cluttered_digits(config_name: str, split: str, data_dir: str | None,
                           shuffle_files: bool, seed: int) -> tf.data.Dataset:
    from rarl_tf.data import cluttered_digits  # noqa: F401  (registers the builder)

    builder = tfds.builder(f"cluttered_digits/{config_name}", data_dir=data_dir)
    # Generated locally from scikit-learn's bundled digits: nothing is downloaded.
    builder.download_and_prepare()
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    ds = builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config)
    num_classes = builder.info.features["labels"].shape[-1]
    return ds.map(lambda ex: {"image": ex["image"], "labels": tf.cast(ex["labels"], tf.float32),
                              "ignore": tf.zeros([num_classes], tf.bool)},
                  num_parallel_calls=tf.data.AUTOTUNE)


_DIGITS = tuple(str(d) for d in range(10))
SOURCES: dict[str, Source] = {
    "cluttered_digits": Source(_DIGITS, "train", "test", _cluttered_digits("default")),
    "cluttered_digits/small": Source(_DIGITS, "train", "test", _cluttered_digits("small")),
}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(SOURCES)}")
    return SOURCES[name]
