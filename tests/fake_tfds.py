"""Consistent fake records for `tfds.testing.mock_data(as_dataset_fn=...)`.

tfds's own random mock draws each field of an object `Sequence` with its own length, which the
encoder rejects for voc/2007 and coco/2014; these records are built like real ones instead and
go through the builder's own `encode_example` / `decode_example` (with the caller's decoders).
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds


def _objects(builder_name: str, rng: np.random.Generator, index: int) -> dict:
    # Every third COCO image has no object (COCO has such images); VOC images always have one.
    count = 0 if builder_name == "coco" and index % 3 == 2 else int(rng.integers(1, 4))
    num_classes = 20 if builder_name == "voc" else 80
    y1, x1 = rng.uniform(0, 0.5, (2, count))
    boxes = [tfds.features.BBox(a, b, a + 0.4, b + 0.4) for a, b in zip(y1, x1)]
    labels = rng.integers(0, num_classes, count)
    if builder_name == "voc":
        return {
            "bbox": boxes,
            "label": labels,
            "pose": np.zeros(count, np.int64),
            "is_truncated": np.zeros(count, bool),
            "is_difficult": rng.uniform(size=count) < 0.3,
        }
    return {
        "bbox": boxes,
        "label": labels,
        "area": np.full(count, 100, np.int64),
        "id": np.arange(count, dtype=np.int64),
        "is_crowd": np.zeros(count, bool),
    }


def record(builder_name: str, index: int) -> dict:
    rng = np.random.default_rng(index)
    height, width = rng.integers(24, 64, 2)
    example = {
        "image": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        "image/filename": f"{index:06d}.jpg",
        "objects": _objects(builder_name, rng, index),
    }
    if builder_name == "voc":
        labels = sorted(set(example["objects"]["label"].tolist()))
        easy = example["objects"]["label"][~example["objects"]["is_difficult"]]
        example.update(labels=labels, labels_no_difficult=sorted(set(easy.tolist())))
    else:
        example["image/id"] = index
    return example


def as_dataset_fn(num_examples: int, undecodable: tuple[int, ...] = ()):
    """A replacement for `DatasetBuilder._as_dataset` yielding `num_examples` records.

    The images of the records numbered in `undecodable` are bytes that do not decode.
    """

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del split, read_config, shuffle_files
        features = self.info.features
        encoded = [features.encode_example(record(self.name, i)) for i in range(num_examples)]
        for i in undecodable:
            encoded[i]["image"] = b"\xff\xd8\xff truncated"
        specs = features.get_serialized_info()
        signature = tf.nest.map_structure(lambda s: tf.TensorSpec(s.shape, s.dtype), specs)
        ds = tf.data.Dataset.from_generator(lambda: iter(encoded), output_signature=signature)
        return ds.map(lambda ex: features.decode_example(ex, decoders=decoders))

    return as_dataset
