import numpy as np
import pytest
import tensorflow as tf

from rarl_tf.model import crop


def _hand_bilinear(fmap, y, x):
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, fmap.shape[0] - 1), min(x0 + 1, fmap.shape[1] - 1)
    dy, dx = y - y0, x - x0
    return (
        (1 - dy) * (1 - dx) * fmap[y0, x0]
        + (1 - dy) * dx * fmap[y0, x1]
        + dy * (1 - dx) * fmap[y1, x0]
        + dy * dx * fmap[y1, x1]
    )


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


# A box ending on the map's edge puts its last sample exactly on the last cell; in float32
# the position rounds to either side, and crop_and_resize then reads the cell or writes 0. For
# 14 samples of an 8-cell map (the whole view at voc.flags's N = 128) and 28 of 16,
# crop_and_resize writes 0 where the matmul crops read the edge cell (up to 2.9 apart):
# an open bug (2026-11-30). Computing the positions in crop_and_resize's own order fixed it in
# TensorFlow but not after TFLite conversion (which reorders the arithmetic: the digits export
# then missed Keras by 1.6e-4), so it was not kept; the cases stay here, expected to fail. The
# export's crops of constant boxes (whole view, the spatial head's grid) avoid it (next test);
# runtime boxes (the regions, clipped to the view) can still meet it.
EDGE_BUG = {(8, 14), (16, 28)}


@pytest.mark.parametrize(
    "side, size",
    [
        pytest.param(side, size, marks=pytest.mark.xfail(strict=True, reason="open edge bug"))
        if (side, size) in EDGE_BUG
        else (side, size)
        for side, size in ((8, 14), (16, 28), (16, 14), (14, 28), (32, 14), (7, 9), (28, 4))
    ],
)
def test_both_matmul_crops_equal_crop_and_resize_when_samples_end_on_the_map_edge(side, size):
    from export import gpu_graph

    rng = np.random.default_rng(side * 100 + size)
    edges = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0.25, -0.2, 1.0, 0.9]], np.float32)
    fmap = tf.constant(rng.normal(size=(1, side, side, 2)), tf.float32)
    boxes = np.concatenate([edges, rng.uniform(-0.3, 1.3, (8, 4))]).astype(np.float32)
    want = crop.crop_regions(fmap, boxes, np.zeros(len(boxes), np.int32), size).numpy()
    got = crop.crop_regions_matmul(fmap, tf.constant(boxes), None, size).numpy()
    # float32 rounding of sums over up to 32 cells: 1e-5 apart at most; the bug is ~1.
    np.testing.assert_allclose(got, want, atol=1e-4)
    exported = gpu_graph.crop(fmap, tf.constant(boxes), size).numpy()
    np.testing.assert_allclose(exported, want.reshape(len(boxes), size * size, 2), atol=1e-4)


@pytest.mark.parametrize("side, size", [(8, 14), (16, 28), (16, 14), (32, 14), (8, 7)])
def test_exported_crop_of_constant_boxes_is_crop_and_resize_even_on_the_edge(side, size):
    # The whole view and the spatial head's grid are constant boxes: the export takes their
    # weights from crop_and_resize itself, so the edge bug above does not reach them.
    from export import gpu_graph

    fmap = tf.constant(np.random.default_rng(side).normal(size=(1, side, side, 3)), tf.float32)
    boxes = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0.25, -0.2, 1.0, 0.9]], np.float32)
    want = crop.crop_regions(fmap, boxes, np.zeros(3, np.int32), size).numpy()
    got = gpu_graph.crop_constant(fmap, boxes, size).numpy()
    np.testing.assert_allclose(got, want.reshape(3, size * size, 3), atol=1e-4)
