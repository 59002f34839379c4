"""The datasets by name, and what is known of each without reading it: the one list of them.

No TensorFlow here: the config checks --dataset against these names before TF loads.
`rarl_tf/data/sources.py` adds how each is read (its reader, with the class names).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset.

    Attributes:
      reader: the key of its reader in `rarl_tf/data/sources.py`'s READERS.
      train_split / eval_split: split names as the reader understands them.
      variant: the reader's first argument where one reader serves several datasets (the
        TFDS configuration of cluttered_digits), else None.
    """

    reader: str
    train_split: str
    eval_split: str
    variant: str | None = None


DATASETS: dict[str, Dataset] = {
    "cluttered_digits": Dataset("cluttered_digits", "train", "test", "default"),
    "cluttered_digits/small": Dataset("cluttered_digits", "train", "test", "small"),
    "cluttered_digits/large": Dataset("cluttered_digits", "train", "test", "large"),
    "cluttered_digits/repeats": Dataset("cluttered_digits", "train", "test", "repeats"),
    # Paper: train on VOC07 trainval, test on test; COCO train / val2014.
    "voc2007": Dataset("voc2007", "train+validation", "test"),
    "coco2014": Dataset("coco2014", "train", "validation"),
    "voc_dir": Dataset("voc_dir", "trainval", "test"),
}
