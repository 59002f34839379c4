import numpy as np
import pytest
import tensorflow_datasets as tfds

from rarl_tf.data import cluttered_digits as cd


def _build(tmp_path, seed=0, name="a"):
    config = cd.ClutteredDigitsConfig(
        name="tiny", canvas_size=64, num_train=40, num_test=12, seed=seed
    )
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


def _canvases(count, **options):
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng([0, 0])
    pool = cd.source_pools(0)["train"]
    return [
        cd.make_canvas(rng, digits.images / 16.0, digits.target, pool, 128, **options)
        for _ in range(count)
    ]


def test_default_canvases_are_as_before_the_large_config():
    """The default rule of digit sizes, untouched by `long_sides` (sha256 of 20 canvases as the
    code of 650c628 drew them)."""
    import hashlib

    digest = hashlib.sha256()
    for ex in _canvases(20):
        digest.update(ex["image"].tobytes())
        digest.update(ex["objects"]["bbox"].tobytes())
    assert digest.hexdigest()[:16] == "67998b0328b50b8b"


def test_large_config_draws_one_to_three_large_digits():
    config = next(c for c in cd.ClutteredDigits.BUILDER_CONFIGS if c.name == "large")
    assert (config.canvas_size, config.num_train, config.num_test) == (128, 10_000, 2_000)
    large = _canvases(200, max_digits=config.max_digits, long_sides=config.long_sides)
    counts, longs, sides, ratios = [], [], [], set()
    for ex in large:
        boxes = ex["objects"]["bbox"] * 128
        heights, widths = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        counts.append(len(boxes))
        longs.extend(np.maximum(heights, widths) / 128)
        sides.extend(np.sqrt(heights * widths) / 128)
        ratios.update(np.round(widths / heights, 1))
        np.testing.assert_array_equal(
            np.flatnonzero(ex["labels"]), np.unique(ex["objects"]["label"])
        )
    assert min(counts) == 1 and max(counts) == 3
    # Longer sides of 43 to 85 px: a third to two thirds of the side, both ends reached.
    assert 42.5 / 128 <= min(longs) < 0.36 and 0.64 < max(longs) <= 85.5 / 128
    assert ratios == {0.5, 1.0, 2.0}
    # Larger than the default's digits: the median square root of the area 0.39 of the side
    # against 0.28 (measured on these canvases), about twice the area.
    default = [
        np.sqrt((b[2] - b[0]) * (b[3] - b[1]))
        for ex in _canvases(200)
        for b in ex["objects"]["bbox"]
    ]
    assert np.median(sides) > 1.3 * np.median(default)


def test_large_dataset_is_registered():
    from rarl_tf.config.datasets import DATASETS
    from rarl_tf.data.sources import get_source

    assert "cluttered_digits/large" in DATASETS
    assert get_source("cluttered_digits/large").class_names == tuple(str(d) for d in range(10))


def _repeats_plan():
    config = next(c for c in cd.ClutteredDigits.BUILDER_CONFIGS if c.name == "repeats")
    return config, cd.canvas_plan(config)


def test_repeats_config_draws_three_classes_each_two_or_three_times_apart():
    config, plan = _repeats_plan()
    assert (config.canvas_size, config.num_train, config.num_test) == (128, 10_000, 2_000)
    canvases = _canvases(200, long_sides=config.long_sides, plan=plan)
    copies = []
    for ex in canvases:
        boxes = ex["objects"]["bbox"] * 128
        labels = ex["objects"]["label"]
        np.testing.assert_array_equal(np.flatnonzero(ex["labels"]), np.unique(labels))
        copies += np.unique(labels, return_counts=True)[1].tolist()
        assert len(np.unique(labels)) <= 3
        # Square digits of 16 to 19 px, at least 10 px from the edge and from each other.
        sides = boxes[:, 2:] - boxes[:, :2]
        assert np.all(np.abs(sides[:, 0] - sides[:, 1]) < 0.01)
        assert np.all((sides >= 15.99) & (sides <= 19.01))
        assert np.all(boxes >= 10 - 0.01) and np.all(boxes <= 118 + 0.01)
        for i in range(len(boxes)):
            for j in range(i):
                (y1, x1, y2, x2), (b1, a1, b2, a2) = boxes[i], boxes[j]
                assert (
                    y1 >= b2 + 10 - 0.01
                    or b1 >= y2 + 10 - 0.01
                    or (x1 >= a2 + 10 - 0.01 or a1 >= x2 + 10 - 0.01)
                )
    # Nearly every canvas has 3 classes and each class 2 or 3 digits (a digit that finds no
    # room is left out: measured here, no canvas short of a class, 7 of 200 with a class down
    # to one digit).
    assert np.mean([ex["labels"].sum() == 3 for ex in canvases]) >= 0.98
    assert set(copies) <= {1, 2, 3} and np.mean(np.isin(copies, [2, 3])) >= 0.95
    assert {2, 3} <= set(copies)


def test_repeats_leave_a_class_blind_policy_a_fifth_of_the_classes_to_miss():
    from tools.digits_probe import probe

    result = probe("repeats", glimpses=3, image_size=64, count=300, seed=0)
    # 6 to 9 digits of 3 classes, 3 glimpses on distinct digits: 1 - C(4,3)/C(6,3) = 0.80 for
    # 2 copies each, 1 - C(6,3)/C(9,3) = 0.76 for 3.
    assert 0.74 < result["classes found: class-blind aim"] < 0.82
    assert result["classes found: class-aware aim"] == 1.0
    assert result["classes found: random centres"] < 0.3
    assert 8.0 <= result["digit side, view px (median)"] <= 9.5
    default = probe("default", glimpses=5, image_size=64, count=300, seed=0)
    assert default["classes found: class-blind aim"] == 1.0  # no room for memory there


def test_repeats_dataset_is_registered():
    from rarl_tf.config.datasets import DATASETS
    from rarl_tf.data.sources import get_source

    assert "cluttered_digits/repeats" in DATASETS
    assert get_source("cluttered_digits/repeats").class_names == tuple(str(d) for d in range(10))
