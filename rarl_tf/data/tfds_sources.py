"""Datasets read through tensorflow-datasets: Pascal VOC 2007, MS-COCO 2014, cluttered_digits.

Each loader returns examples `{"image": encoded bytes (tf.string), "labels": float32 [C],
"ignore": bool [C]}`, and for VOC and COCO the image's file name as "name" (warnings name
it). Images stay encoded here so the pipeline can decode them itself and skip (and count) an
image that does not decode, or is over --max_pixels, instead of ending the run.

VOC and COCO must be prepared in `data_dir` (`tfds build voc/2007 --data_dir=DIR`) or
`download=True` lets tensorflow-datasets download and prepare them; without either the loader
stops at once with `DatasetNotPrepared`, saying how to get the data.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_datasets as tfds

from rarl_tf.data.labels import multi_hot, voc_labels
from rarl_tf.data.voc_dir import VOC_CLASSES

# COCO's 80 categories in ascending category-id order, the label order of tfds coco/2014.
COCO_CLASSES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

_HOW_TO_GET = {
    "voc/2007": "about 0.9 GB",
    "coco/2014": "about 20 GB, several hours to prepare",
}


class DatasetNotPrepared(FileNotFoundError):
    """A tensorflow-datasets dataset that is not in `data_dir` and may not be downloaded."""


def _builder(name: str, data_dir: str | None, download: bool) -> tfds.core.DatasetBuilder:
    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    elif not builder.is_prepared():
        where = data_dir or "the default tensorflow-datasets folder (~/tensorflow_datasets)"
        raise DatasetNotPrepared(
            f"{name} is not prepared in {where}. Either prepare it once with "
            f"`tfds build {name} --data_dir=DIR` ({_HOW_TO_GET.get(name, 'download size varies')})"
            f" and pass --data_dir=DIR, or add --download to let this run download it, or, for "
            f"VOC files already on disk, use --dataset=voc_dir --data_dir=path/to/VOC2007"
        )
    return builder


def _check_class_names(
    builder: tfds.core.DatasetBuilder, feature_path: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    feature = builder.info.features
    for key in feature_path:
        feature = feature[key]
    names = tuple(feature.names)
    # COCO's names are only filled in once the data is prepared; before that they are "0".."79".
    if names != tuple(str(i) for i in range(len(names))) and names != expected:
        raise ValueError(
            f"{builder.name}: its class names {names[:4]}... differ from the "
            f"expected {expected[:4]}...; the label order would be wrong"
        )


def _as_dataset(builder, split: str, shuffle_files: bool, seed: int) -> tf.data.Dataset:
    return builder.as_dataset(
        split=split,
        shuffle_files=shuffle_files,
        read_config=tfds.ReadConfig(shuffle_seed=seed, shuffle_reshuffle_each_iteration=False),
        decoders={"image": tfds.decode.SkipDecoding()},
    )


def load_voc2007(
    split: str, data_dir: str | None, shuffle_files: bool, seed: int, download: bool = False
) -> tf.data.Dataset:
    """voc/2007 examples (labels and ignore by `labels.voc_labels`)."""
    builder = _builder("voc/2007", data_dir, download)
    _check_class_names(builder, ("objects", "label"), VOC_CLASSES)

    def convert(ex):
        labels, ignore = voc_labels(
            ex["objects"]["label"], ex["objects"]["is_difficult"], len(VOC_CLASSES)
        )
        return {
            "image": ex["image"],
            "labels": labels,
            "ignore": ignore,
            "name": ex["image/filename"],
        }

    return _as_dataset(builder, split, shuffle_files, seed).map(
        convert, num_parallel_calls=tf.data.AUTOTUNE
    )


def load_coco2014(
    split: str, data_dir: str | None, shuffle_files: bool, seed: int, download: bool = False
) -> tf.data.Dataset:
    """coco/2014: labels from all objects (crowd regions included); some images have none."""
    builder = _builder("coco/2014", data_dir, download)
    _check_class_names(builder, ("objects", "label"), COCO_CLASSES)
    num_classes = len(COCO_CLASSES)
    return _as_dataset(builder, split, shuffle_files, seed).map(
        lambda ex: {
            "image": ex["image"],
            "labels": multi_hot(ex["objects"]["label"], num_classes),
            "ignore": tf.zeros([num_classes], tf.bool),
            "name": ex["image/filename"],
        },
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def cluttered_digits_builder(config_name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    """The prepared cluttered_digits/`config_name` builder, generated on first use."""
    from rarl_tf.data import cluttered_digits  # noqa: F401  (registers the builder)

    builder = tfds.builder(f"cluttered_digits/{config_name}", data_dir=data_dir)
    try:
        builder.download_and_prepare()  # generated from scikit-learn's bundled digits
    except FileExistsError:
        # Another process (a second worker) finished generating it first; theirs is complete.
        if not builder.is_prepared():
            raise
    return builder


def load_cluttered_digits(
    config_name: str,
    split: str,
    data_dir: str | None,
    shuffle_files: bool,
    seed: int,
    download: bool = False,
) -> tf.data.Dataset:
    """The embedded default: generated locally on first use, so `download` does not matter."""
    del download
    builder = cluttered_digits_builder(config_name, data_dir)
    num_classes = builder.info.features["labels"].shape[-1]
    return _as_dataset(builder, split, shuffle_files, seed).map(
        lambda ex: {
            "image": ex["image"],
            "labels": tf.cast(ex["labels"], tf.float32),
            "ignore": tf.zeros([num_classes], tf.bool),
        },
        num_parallel_calls=tf.data.AUTOTUNE,
    )
