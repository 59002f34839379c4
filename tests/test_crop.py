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


def test_both_matmul_crops_equal_crop_and_resize_when_samples_end_on_the_map_edge():
    # A box ending on the edge puts its last sample exactly on the last cell; in float32 the
    # position rounds to either side of it depending on the order of the arithmetic, and
    # crop_and_resize then reads the cell or writes 0. 14 samples of an 8-cell map: the whole
    # view differed by 2.5 (the spatial head's grid at voc.flags's N = 128) before the matmul
    # crops used crop_and_resize's own order.
    from export import gpu_graph

    rng = np.random.default_rng(1)
    edges = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0.25, -0.2, 1.0, 0.9]], np.float32)
    for side, size in ((8, 14), (16, 14), (14, 28), (32, 14), (7, 9), (28, 4)):
        fmap = tf.constant(rng.normal(size=(1, side, side, 2)), tf.float32)
        boxes = np.concatenate([edges, rng.uniform(-0.3, 1.3, (8, 4))]).astype(np.float32)
        want = crop.crop_regions(fmap, boxes, np.zeros(len(boxes), np.int32), size).numpy()
        got = crop.crop_regions_matmul(fmap, tf.constant(boxes), None, size).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{side} cells, {size}")
        exported = gpu_graph.crop(fmap, tf.constant(boxes), size).numpy()
        np.testing.assert_allclose(exported, want.reshape(len(boxes), size * size, 2),
                                   atol=1e-5, err_msg=f"export, {side} cells, {size}")
