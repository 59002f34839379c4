import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score

from rarl_tf.evaluation import metrics


def _random(n=60, c=5, seed=0):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.uniform(size=(n, c)), 1)  # rounding makes ties
    labels = (rng.uniform(size=(n, c)) < 0.35).astype(int)
    labels[0] = 1  # every class has a positive
    return scores, labels


def test_ap_equals_sklearn_with_ties():
    scores, labels = _random()
    ours = metrics.average_precision(scores, labels)
    theirs = [average_precision_score(labels[:, c], scores[:, c]) for c in range(5)]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_ignored_entries_leave_the_ranking():
    scores, labels = _random(seed=1)
    ignore = np.random.default_rng(2).uniform(size=labels.shape) < 0.2
    ours = metrics.average_precision(scores, labels, ignore=ignore)
    for c in range(5):
        keep = ~ignore[:, c]
        assert ours[c] == pytest.approx(
            average_precision_score(labels[keep, c], scores[keep, c]), abs=1e-12
        )


def test_class_without_positive_is_nan():
    ap = metrics.average_precision([[0.9, 0.1], [0.3, 0.9]], [[1, 0], [0, 0]])
    assert ap[0] == 1.0 and np.isnan(ap[1])


def test_voc07_eleven_point_hand_case():
    # Ranking: pos, neg, pos, neg -> (P, R) = (1, .5), (.5, .5), (2/3, 1), (.5, 1).
    # Max precision at recall >= t: 1 for t <= 0.5 (6 points), 2/3 for t > 0.5 (5 points).
    ap = metrics.average_precision([[0.9], [0.8], [0.7], [0.6]], [[1], [0], [1], [0]], voc07=True)
    assert ap[0] == pytest.approx((6 * 1.0 + 5 * 2 / 3) / 11)


def test_prf_hand_worked():
    scores = np.array(
        [
            [0.6, 0.3, 0.05],  # top-2 = {0, 1}
            [0.2, 0.7, 0.08],  # top-2 = {1, 0}
            [0.05, 0.05, 0.9],  # top-2 = {2}, class 0 dropped by the threshold
            [0.5, 0.45, 0.05],
        ]
    )  # top-2 = {0, 1}
    labels = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]])
    # Predicted: class0 {0,1,3}, class1 {0,1,3}, class2 {2}.
    # Correct: class0 {0,3} = 2 of 3, class1 {1,3} = 2 of 3, class2 {2} = 1 of 1.
    # Ground truth: class0 2, class1 2, class2 2.
    got = metrics.multilabel_prf(scores, labels, top_k=2, threshold=0.1)
    cp, cr = (2 / 3 + 2 / 3 + 1) / 3, (1 + 1 + 0.5) / 3
    op, orec = 5 / 7, 5 / 6
    assert got["CP"] == pytest.approx(cp) and got["CR"] == pytest.approx(cr)
    assert got["OP"] == pytest.approx(op) and got["OR"] == pytest.approx(orec)
    assert got["CF1"] == pytest.approx(2 * cp * cr / (cp + cr))
    assert got["OF1"] == pytest.approx(2 * op * orec / (op + orec))


def test_prf_agrees_with_sklearn_on_binarised_predictions():
    scores, labels = _random(n=200, seed=3)
    predicted = metrics.top_k_predictions(scores, 3, 0.1)
    assert predicted.any(axis=0).all(), "every class must be predicted for macro-P to agree"
    got = metrics.multilabel_prf(scores, labels, top_k=3, threshold=0.1)
    assert got["OP"] == pytest.approx(precision_score(labels, predicted, average="micro"))
    assert got["OR"] == pytest.approx(recall_score(labels, predicted, average="micro"))
    assert got["CP"] == pytest.approx(precision_score(labels, predicted, average="macro"))
    assert got["CR"] == pytest.approx(recall_score(labels, predicted, average="macro"))


def test_top_k_ties_go_to_the_lower_index():
    chosen = metrics.top_k_predictions([[0.5, 0.5, 0.5]], top_k=2, threshold=0.0)
    assert chosen.tolist() == [[True, True, False]]


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        (np.zeros(3), np.zeros(3), "2-D"),
        (np.zeros((2, 3)), np.zeros((2, 4)), "labels must have the shape"),
        (np.full((2, 2), np.nan), np.zeros((2, 2)), "NaN"),
    ],
)
def test_bad_input_is_named(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        metrics.average_precision(scores, labels)
