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

from rarl_tf.config.datasets import DATASETS, Dataset
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


@dataclasses.dataclass(frozen=True)
class Reader:
    """How a kind of dataset is read: its class names and its loader (the dataset's variant, if
    it has one, then the arguments of `Source.load`)."""

    class_names: tuple[str, ...]
    load: Callable[..., tf.data.Dataset]


READERS: dict[str, Reader] = {
    "cluttered_digits": Reader(
        tuple(str(d) for d in range(10)), tfds_sources.load_cluttered_digits
    ),
    "voc2007": Reader(voc_dir.VOC_CLASSES, tfds_sources.load_voc2007),
    "coco2014": Reader(tfds_sources.COCO_CLASSES, tfds_sources.load_coco2014),
    "voc_dir": Reader(voc_dir.VOC_CLASSES, _voc_dir),
}


def _source(dataset: Dataset) -> Source:
    reader = READERS[dataset.reader]
    load = reader.load
    if dataset.variant is not None:
        load = functools.partial(load, dataset.variant)
    return Source(reader.class_names, dataset.train_split, dataset.eval_split, load)


# Built from the one list of datasets (rarl_tf/config/datasets.py), in its order.
SOURCES: dict[str, Source] = {name: _source(dataset) for name, dataset in DATASETS.items()}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"--dataset={name} is not allowed: expected one of {sorted(SOURCES)}")
    return SOURCES[name]
