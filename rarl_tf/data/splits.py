"""The one way into a dataset's examples: `load_split(config, "train" | "eval")`.

Training, evaluation, the exporters and the tools read a split through this function, so the
dataset's name, folder, download permission and seed all come from the one `ExperimentConfig`
(`config.data.dataset`, `config.data.data_dir`, `config.data.download`, `config.train.seed`).
The examples are those of `sources.Source.load` (encoded images, multi-hot labels, `ignore`).
"""

from __future__ import annotations

import functools

import tensorflow as tf

from rarl_tf.config.experiment import ExperimentConfig
from rarl_tf.data.sources import get_source

ROLES = ("train", "eval")


def split_name(dataset: str, role: str) -> str:
    """The loader's own name of the dataset's training or evaluation split (e.g. voc2007's
    "train+validation" and "test")."""
    source = get_source(dataset)
    if role == "train":
        return source.train_split
    if role == "eval":
        return source.eval_split
    raise ValueError(f"split {role!r} is not allowed: expected one of {ROLES}")


def load_split(
    config: ExperimentConfig, split: str, *, shuffle_files: bool = False
) -> tf.data.Dataset:
    """The examples of `config`'s dataset in its training or evaluation split.

    Args:
      config: the experiment; its dataset, data_dir, download and seed are used.
      split: "train" (the dataset's training split) or "eval" (its evaluation split).
      shuffle_files: read in an order shuffled by `config.train.seed` (training) instead of the
        stored order (evaluation, calibration, the data check before training).

    Raises:
      ValueError: an unknown dataset or split; the loaders' own errors (e.g.
        `tfds_sources.DatasetNotPrepared`) when the data is not there.
    """
    data = config.data
    source = get_source(data.dataset)
    return source.load(
        split_name(data.dataset, split),
        data.data_dir,
        shuffle_files=shuffle_files,
        seed=config.train.seed,
        download=data.download,
    )


class Splits:
    """A run's two splits, each loaded when first asked for and then kept, so the parts of one
    run that read a split (training, its attention pictures, the evaluation after it) share
    one load: a VOC folder's annotations are parsed, and its bad files named, at every load."""

    def __init__(self, config: ExperimentConfig):
        self.config = config

    @functools.cached_property
    def train(self) -> tf.data.Dataset:
        """The training split, read in an order shuffled by the seed."""
        return load_split(self.config, "train", shuffle_files=True)

    @functools.cached_property
    def eval(self) -> tf.data.Dataset:
        """The evaluation split, in its stored order."""
        return load_split(self.config, "eval")


def class_names(config: ExperimentConfig) -> tuple[str, ...]:
    """The dataset's C class names, in label-index order."""
    return get_source(config.data.dataset).class_names
