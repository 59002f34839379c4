"""Data sources by name: how to read each dataset's splits, and its class names.

A source's `load` returns examples `{"image": encoded image bytes (tf.string), "labels": float32
[C] multi-hot, "ignore": bool [C]}`. `ignore` marks classes to leave out of AP for that image
(VOC's "difficult"-only classes); it is all False where a dataset defines no such thing. A
"name" (the file name) is added where the dataset has one. Images are decoded by the pipeline
(`pipeline.decode`), which skips and counts those that do not decode or are over --max_pixels.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import tensorflow as tf

from rarl_tf.config.experiment import DATASETS
from rarl_tf.data import tfds_sources, voc_dir


@dataclasses.dataclass(frozen=True)
class Source:
    """How to read one dataset.

    Attributes:
      class_names: the C label names, in label-index order.
      train_split / eval_split: split names as the loader understands them.
      load: (split, data_dir, shuffle_files, seed, download) -> tf.data.Dataset of examples;
        callers go through `splits.load_split`, which takes these from the config.
    """

    class_names: tuple[str, ...]
    train_split: str
    eval_split: str
    load: Callable[..., tf.data.Dataset]


def _voc_dir(
    split: str, data_dir: str | None, shuffle_files: bool, seed: int, download: bool = False
) -> tf.data.Dataset:
    del download  # the files are already on disk
    return voc_dir.load(data_dir, split, shuffle_files, seed)


_DIGITS = tuple(str(d) for d in range(10))
SOURCES: dict[str, Source] = {
    "cluttered_digits": Source(
        _DIGITS, "train", "test", functools.partial(tfds_sources.load_cluttered_digits, "default")
    ),
    "cluttered_digits/small": Source(
        _DIGITS, "train", "test", functools.partial(tfds_sources.load_cluttered_digits, "small")
    ),
    "cluttered_digits/large": Source(
        _DIGITS, "train", "test", functools.partial(tfds_sources.load_cluttered_digits, "large")
    ),
    "cluttered_digits/repeats": Source(
        _DIGITS, "train", "test", functools.partial(tfds_sources.load_cluttered_digits, "repeats")
    ),
    # Paper: train on VOC07 trainval, test on test; COCO train / val2014.
    "voc2007": Source(voc_dir.VOC_CLASSES, "train+validation", "test", tfds_sources.load_voc2007),
    "coco2014": Source(
        tfds_sources.COCO_CLASSES, "train", "validation", tfds_sources.load_coco2014
    ),
    "voc_dir": Source(voc_dir.VOC_CLASSES, "trainval", "test", _voc_dir),
}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"--dataset={name} is not allowed: expected one of {sorted(SOURCES)}")
    return SOURCES[name]


assert tuple(SOURCES) == DATASETS, "config.DATASETS must list the SOURCES"
