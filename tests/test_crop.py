import numpy as np
import tensorflow as tf

from rarl_tf.model import crop


def _hand_bilinear(fmap, y, x):
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, fmap.shape[0] - 1), min(x0 + 1, fmap.shape[1] - 1)
    dy, dx = y - y0, x - x0
    return ((1 - dy) * (1 - dx) * fmap[y0, x0] + (1 - dy) * dx * fmap[y0, x1]
            + dy * (1 - dx) * fmap[y1, x0] + dy * dx * fmap[y1, x1])


def test_crop_matches_a_hand_computation():
    fmap = np.arange(5 * 5, dtype=np.float32).reshape(1, 5, 5, 1) ** 1.5
    box = np.array([[0.1, 0.2, 0.6, 0.9]], np.float32)  # cells y 0.4..2.4, x 0.8..3.6
    out = crop.crop_regions(tf.constant(fmap), box, tf.constant([0]), 3).numpy()[0, :, :, 0]
    ys, xs = np.linspace(0.4, 2.4, 3), np.linspace(0.8, 3.6, 3)
    expected = np.array([[_hand_bilinear(fmap[0, :, :, 0], y, x) for x in xs] for y in ys])
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_matmul_crop_equals_crop_and_resize_on_random_boxes():
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(3, 7, 9, 4)).astype(np.float32)
    # Boxes partly outside the map, mirrored ones, and degenerate ones.
    boxes = rng.uniform(-0.4, 1.4, size=(40, 4)).astype(np.float32)
    indices = rng.integers(0, 3, size=40).astype(np.int32)
    for size in (1, 2, 5):
        want = crop.crop_regions(tf.constant(fmap), boxes, indices, size).numpy()
        got = crop.crop_regions_matmul(tf.constant(fmap), tf.constant(boxes), indices, size).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
    single = crop.crop_regions_matmul(tf.constant(fmap[:1]), tf.constant(boxes), None, 4).numpy()
    want = crop.crop_regions(tf.constant(fmap[:1]), boxes, np.zeros(40, np.int32), 4).numpy()
    np.testing.assert_allclose(single, want, atol=1e-5)
