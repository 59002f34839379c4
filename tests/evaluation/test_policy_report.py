"""The policy report's rows that tell memory from a clock (rarl_tf/evaluation/policy_report.py)."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from conftest import tiny_model_config
from rarl_tf.evaluation import policy_report as report
from rarl_tf.model.factory import build_model
from rarl_tf.model.overrides import PolicyOverride

# Image 0: classes 3, 3, 5, 7; image 1: two digits of class 4 (rows padded by -1).
BOXES = np.array(
    [
        [[0.0, 0.0, 0.2, 0.2], [0.4, 0.4, 0.6, 0.6], [0.0, 0.6, 0.2, 0.8], [0.8, 0.8, 1.0, 1.0]],
        [[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.7, 0.7], [-1, -1, -1, -1], [-1, -1, -1, -1]],
    ]
)
CLASSES = np.array([[3, 3, 5, 7], [4, 4, -1, -1]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_visits_every_class_before_repeating_one(seed):
    centres = report.oracle_locations(BOXES, CLASSES, 3, seed)
    assert centres.shape == (2, 3, 2)
    for image in range(2):
        boxes, classes = BOXES[image], CLASSES[image]
        middles = (boxes[:, :2] + boxes[:, 2:]) - 1.0
        visited = [int(np.argmin(np.abs(middles - c).sum(-1))) for c in centres[image]]
        np.testing.assert_allclose(centres[image], middles[visited], atol=1e-6)
        assert all(classes[v] >= 0 for v in visited)
        found = {int(classes[v]) for v in visited}
        assert found == set(classes[classes >= 0].tolist())
    # Image 1 has two digits: both are visited before either is visited again.
    first_two = centres[1, :2]
    assert not np.allclose(first_two[0], first_two[1])


def test_classes_found_counts_classes_whose_digit_holds_a_centre():
    objects = [BOXES[0], BOXES[1, :2]]
    classes = [CLASSES[0], CLASSES[1, :2]]
    # Image 0: centres on a class-3 digit twice and on nothing: 1 of 3 classes.
    # Image 1: one centre on a class-4 digit: 1 of 1 class.
    locations = np.array(
        [[[-0.8, -0.8], [0.0, 0.0], [0.0, -0.8]], [[-0.6, -0.6], [0.9, -0.9], [0.9, -0.9]]]
    )
    found = report.classes_found({"locations": locations, "objects": objects, "classes": classes})
    assert found["classes_found"] == pytest.approx((1 / 3 + 1) / 2)
    assert found["all_classes_found"] == pytest.approx(0.5)


def test_paired_bootstrap_difference_is_the_map_difference_and_its_interval_holds_it():
    rng = np.random.default_rng(0)
    labels = (rng.uniform(size=(200, 4)) < 0.4).astype(np.float32)
    good = labels + rng.normal(0, 0.6, labels.shape)
    poor = labels + rng.normal(0, 1.5, labels.shape)
    result = report.paired_bootstrap(
        {"probs": good, "labels": labels}, {"probs": poor, "labels": labels}, resamples=200
    )
    expected = np.mean(
        [average_precision_score(labels[:, c], good[:, c]) for c in range(4)]
    ) - np.mean([average_precision_score(labels[:, c], poor[:, c]) for c in range(4)])
    assert result["difference"] == pytest.approx(expected, abs=1e-9)
    assert 0.0 < result["low"] < result["difference"] < result["high"]
    same = report.paired_bootstrap(
        {"probs": good, "labels": labels}, {"probs": good, "labels": labels}, resamples=50
    )
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}


def test_forced_locations_replace_the_policys_and_leave_no_reinforce_term():
    model = build_model(tiny_model_config(num_steps=3), 5)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    forced = np.array([[[0.5, -0.5], [0.0, 0.25], [-0.75, 0.75]]] * 2, np.float32)
    out = model(images, training=False, override=PolicyOverride(placements=forced))
    np.testing.assert_allclose(out["locations"][:, 0].numpy(), forced, atol=1e-6)
    assert not np.any(out["log_probs"].numpy())
    again = model(images, training=False)["locations"][:, 0].numpy()
    assert not np.allclose(again, forced)
