"""`voc_dir`: a Pascal VOC folder a user already has on disk, parsed with the standard library.

    VOC2007/
      JPEGImages/000005.jpg ...
      Annotations/000005.xml ...
      ImageSets/Main/trainval.txt, test.txt   (one image id per line)

Each image's labels are the classes of its objects; a class whose objects in the image are all
marked `<difficult>1</difficult>` is also set in `ignore`, so AP leaves it out as the VOC devkit
does. An image or annotation that is missing or does not parse is skipped with a warning naming
the file, and the number skipped is reported once the split is read.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import xml.etree.ElementTree as ElementTree

import numpy as np
import tensorflow as tf
from PIL import Image

from rarl_tf.data import image_file
from rarl_tf.data.labels import voc_labels

logger = logging.getLogger(__name__)

# The VOC devkit's class order (VOCinit.m), which tensorflow-datasets' voc/2007 also uses.
VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


class AnnotationError(ValueError):
    """An annotation file that cannot be used, with the reason."""


def parse_annotation(path: str) -> list[tuple[str, bool]]:
    """The (class name, difficult) of every object in one VOC XML annotation.

    Raises:
      AnnotationError: the file does not parse, or names a class outside `VOC_CLASSES`.
    """
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as err:
        raise AnnotationError(f"{path}: not a readable XML annotation ({err})") from None
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise AnnotationError(f"{path}: object class {name!r} is not one of the 20 VOC classes")
        objects.append((name, (obj.findtext("difficult") or "0").strip() == "1"))
    return objects


def labels_and_ignore(objects: list[tuple[str, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot labels [20] float32 and the difficult-only mask [20] bool of one image, by the
    rule tensorflow-datasets' voc/2007 is read with (`labels.voc_labels`)."""
    indices = np.asarray([VOC_CLASSES.index(name) for name, _ in objects], np.int64)
    difficult = np.asarray([flag for _, flag in objects], bool)
    labels, ignore = voc_labels(indices, difficult, len(VOC_CLASSES))
    return labels.numpy(), ignore.numpy()


@dataclasses.dataclass(frozen=True)
class VocSplit:
    """One split of a VOC folder after reading: the usable images and what was skipped."""

    image_paths: tuple[str, ...]
    labels: np.ndarray  # [N, 20] float32
    ignore: np.ndarray  # [N, 20] bool
    skipped: tuple[str, ...]  # files left out, each with its reason


def _image_problem(path: str) -> str | None:
    # A FIFO or device named like an image would block Pillow's open forever.
    kind = image_file.problem(path)
    if kind:
        return kind
    try:
        with Image.open(path) as image:
            image.verify()  # reads the whole file's structure without decoding pixels
    except Exception as err:  # PIL raises many types for a bad file  # noqa: BLE001
        return f"unreadable image ({type(err).__name__}: {err})"
    return None


@functools.lru_cache(maxsize=8)
def read_split(root: str, split: str) -> VocSplit:
    """Reads `ImageSets/Main/{split}.txt` of the VOC folder `root` (e.g. VOCdevkit/VOC2007).

    Cached: training reads the split once per pass, and the warnings should appear once.
    """
    if not root or not os.path.isdir(root):
        raise FileNotFoundError(
            f"--data_dir={root!r} is not a directory: --dataset=voc_dir needs "
            f"the VOC folder holding JPEGImages/, Annotations/ and "
            f"ImageSets/Main/ (e.g. VOCdevkit/VOC2007)"
        )
    list_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    if not os.path.exists(list_file):
        raise FileNotFoundError(
            f"{list_file} not found: a VOC folder lists its {split} images there, one id per line"
        )
    with open(list_file) as f:
        ids = [line.split()[0] for line in f if line.strip()]

    paths, labels, ignore, skipped = [], [], [], []
    for image_id in ids:
        xml_path = os.path.join(root, "Annotations", f"{image_id}.xml")
        image_path = os.path.join(root, "JPEGImages", f"{image_id}.jpg")
        try:
            objects = parse_annotation(xml_path)
        except AnnotationError as err:
            skipped.append(str(err))
            logger.warning("skipping %s: %s", image_id, err)
            continue
        problem = _image_problem(image_path)
        if problem:
            skipped.append(f"{image_path}: {problem}")
            logger.warning("skipping %s: %s", image_path, problem)
            continue
        image_labels, image_ignore = labels_and_ignore(objects)
        paths.append(image_path)
        labels.append(image_labels)
        ignore.append(image_ignore)
    if skipped:
        logger.warning(
            "%s/%s: skipped %d of %d images (see the warnings above)",
            root,
            split,
            len(skipped),
            len(ids),
        )
    if not paths:
        raise FileNotFoundError(f"{list_file}: none of its {len(ids)} images could be read")
    return VocSplit(tuple(paths), np.stack(labels), np.stack(ignore), tuple(skipped))


def load(root: str, split: str, shuffle_files: bool, seed: int) -> tf.data.Dataset:
    """Examples `{"image": encoded bytes, "labels": [20], "ignore": [20], "name": its path}`.

    Args:
      shuffle_files: shuffle the image order with `seed` (training reshuffles per pass by seed).
    """
    data = read_split(root, split)
    order = np.arange(len(data.image_paths))
    if shuffle_files:
        order = np.random.default_rng(seed).permutation(order)
    paths = np.asarray(data.image_paths)[order]
    ds = tf.data.Dataset.from_tensor_slices(
        {"path": paths, "labels": data.labels[order], "ignore": data.ignore[order]}
    )
    return ds.map(
        lambda ex: {
            "image": tf.io.read_file(ex["path"]),
            "labels": ex["labels"],
            "ignore": ex["ignore"],
            "name": ex["path"],
        },
        num_parallel_calls=tf.data.AUTOTUNE,
    )
