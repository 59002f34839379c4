import numpy as np
import pytest
import tensorflow_datasets as tfds

from rarl_tf.data import cluttered_digits as cd


def _build(tmp_path, seed=0, name="a"):
    config = cd.ClutteredDigitsConfig(name="tiny", canvas_size=64, num_train=40, num_test=12,
                                      seed=seed)
    builder = cd.ClutteredDigits(config=config, data_dir=str(tmp_path / name))
    builder.download_and_prepare()
    return builder


def _examples(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("digits"))


def test_examples_are_well_formed(built):
    assert built.info.features["objects"]["label"].names == [str(d) for d in range(10)]
    examples = _examples(built, "train")
    assert len(examples) == 40
    ratios = set()
    for ex in examples:
        assert ex["image"].shape == (64, 64, 3) and ex["image"].dtype == np.uint8
        boxes, labels = ex["objects"]["bbox"], ex["objects"]["label"]
        assert 1 <= len(labels) <= 4
        np.testing.assert_array_equal(np.flatnonzero(ex["labels"]), np.unique(labels))
        assert np.all((boxes >= 0) & (boxes <= 1))
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        ratios.update(np.round((boxes[:, 3] - boxes[:, 1]) / (boxes[:, 2] - boxes[:, 0]), 0))
    assert {0.0, 1.0, 2.0} <= ratios  # tall, square and wide digits all occur


def test_splits_use_disjoint_source_digits(built):
    train = {i for ex in _examples(built, "train") for i in ex["objects"]["source_index"]}
    test = {i for ex in _examples(built, "test") for i in ex["objects"]["source_index"]}
    assert train and test and not train & test
    pools = cd.source_pools(0)
    assert not set(pools["train"]) & set(pools["test"])
    assert len(pools["train"]) + len(pools["test"]) == 1797


def test_generation_is_deterministic_for_a_seed(built, tmp_path):
    again = _build(tmp_path, seed=0, name="b")
    other = _build(tmp_path, seed=1, name="c")
    first = [ex["image"] for ex in _examples(built, "test")]
    np.testing.assert_array_equal(first, [ex["image"] for ex in _examples(again, "test")])
    assert not np.array_equal(first, [ex["image"] for ex in _examples(other, "test")])


def test_default_config_is_the_promised_size():
    config = cd.ClutteredDigits.BUILDER_CONFIGS[0]
    assert (config.canvas_size, config.num_train, config.num_test) == (128, 10_000, 2_000)
