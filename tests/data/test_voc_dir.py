"""A VOC-layout folder on disk: parsing, the difficult-only ignore mask, and bad files."""

import logging

import numpy as np
import pytest

from rarl_tf.data import pipeline, voc_dir
from voc_files import OBJECT, jpeg, write_voc


@pytest.fixture
def voc_root(tmp_path):
    voc_dir.read_split.cache_clear()
    return write_voc(
        tmp_path / "VOC2007",
        {
            "000001": ([("person", False), ("dog", False), ("dog", True)], jpeg(tmp_path, 1)),
            "000002": ([("chair", True), ("chair", True), ("cat", False)], jpeg(tmp_path, 2)),
            "000003": ([("bird", False)], b"this is not a jpeg"),
            "000004": ("<annotation><object><name>cat", jpeg(tmp_path, 4)),  # truncated XML
            "000005": ([("car", False)], None),  # image missing
        },
    )


def test_parse_annotation_reads_names_and_difficult(voc_root):
    objects = voc_dir.parse_annotation(str(voc_root / "Annotations/000002.xml"))
    assert objects == [("chair", True), ("chair", True), ("cat", False)]


def test_unknown_class_is_an_annotation_error(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text("<annotation>" + OBJECT.format("unicorn", 0) + "</annotation>")
    with pytest.raises(voc_dir.AnnotationError, match="'unicorn' is not one of the 20 VOC"):
        voc_dir.parse_annotation(str(path))


def test_split_labels_ignore_and_skips(voc_root, caplog):
    with caplog.at_level(logging.WARNING):
        split = voc_dir.read_split(str(voc_root), "trainval")
    assert [p.rsplit("/", 1)[-1] for p in split.image_paths] == ["000001.jpg", "000002.jpg"]
    names = voc_dir.VOC_CLASSES
    assert [names[i] for i in np.flatnonzero(split.labels[0])] == ["dog", "person"]
    assert not split.ignore[0].any()  # dog has an easy object too
    assert [names[i] for i in np.flatnonzero(split.labels[1])] == ["cat", "chair"]
    assert [names[i] for i in np.flatnonzero(split.ignore[1])] == ["chair"]  # difficult only
    assert len(split.skipped) == 3
    text = caplog.text
    for name in ("000003.jpg", "000004.xml", "000005.jpg"):
        assert name in text, name
    assert "skipped 3 of 5 images" in text


def test_load_yields_decodable_examples(voc_root):
    examples = voc_dir.load(str(voc_root), "trainval", shuffle_files=True, seed=0)
    decoded = list(pipeline.decode(examples))
    assert len(decoded) == 2
    assert {tuple(ex["image"].shape) for ex in decoded} == {(20, 30, 3)}
    assert sorted(ex["labels"].numpy().sum() for ex in decoded) == [2.0, 2.0]


def test_missing_folder_and_list_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        voc_dir.read_split(str(tmp_path / "nope"), "trainval")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="ImageSets/Main/test.txt not found"):
        voc_dir.read_split(str(tmp_path / "empty"), "test")


def test_undecodable_image_in_a_dataset_is_skipped_and_counted(tmp_path):
    import tensorflow as tf

    good = jpeg(tmp_path)
    examples = tf.data.Dataset.from_tensor_slices(
        {
            "image": [good, b"\xff\xd8 broken", good, b"garbage"],
            "labels": np.eye(4, dtype=np.float32),
            "ignore": np.zeros((4, 4), bool),
        }
    )
    counter = pipeline.SkipCounter()
    batches = list(pipeline.eval_batches(examples, image_size=16, batch_size=8, counter=counter))
    assert batches[0][0].shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(batches[0][1].numpy(), np.eye(4)[[0, 2]])
    assert counter.undecodable == 2
