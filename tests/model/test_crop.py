"""The crop's three implementations (crop_and_resize, the matmul crop, the export's one-product
crop) against an independent float64 reference of one semantics: boxes kept inside the map
(`crop.inside_map`), bilinear samples evenly spaced from edge to edge."""

import numpy as np
import pytest
import tensorflow as tf

from rarl_tf.model import anchors, crop, views


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


def _axis64(start, end, size, samples):
    """float64 [K, samples, size] bilinear weights (triangle kernel) of evenly spaced samples."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    if samples > 1:
        pos = start[:, None] + np.arange(samples)[None] / (samples - 1) * (end - start)[:, None]
    else:
        pos = 0.5 * (start + end)[:, None]
    pos = pos * (size - 1)
    return np.maximum(0.0, 1.0 - np.abs(pos[:, :, None] - np.arange(size)[None, None]))


def reference_crop(fmap, boxes, samples):
    """float64 [K, s, s, C] crops of one image's map [1, h, w, C], boxes clipped to the map
    (to crop.EDGE, the implementations' nudge; 0 and 1 give the same within 1e-4 here)."""
    boxes = np.clip(np.asarray(boxes, np.float64), crop.EDGE, 1.0 - crop.EDGE)
    f = np.asarray(fmap, np.float64)[0]
    wy = _axis64(boxes[:, 0], boxes[:, 2], f.shape[0], samples)
    wx = _axis64(boxes[:, 1], boxes[:, 3], f.shape[1], samples)
    return np.einsum("kiy,kjx,yxc->kijc", wy, wx, f)


def _crop_with(name, fmap, boxes, samples):
    """[K, s, s, C] by the crop called `name`, of boxes [K, 4] from one image's map."""
    boxes = np.asarray(boxes, np.float32)
    if name == "crop_and_resize":
        return crop.crop_regions(fmap, boxes, np.zeros(len(boxes), np.int32), samples)
    if name == "matmul":  # boxes whose count is known only at run time (training's case)
        return _traced(lambda b: crop.crop_regions_matmul(fmap, b, None, samples), boxes, None)
    if name == "matmul_gather":  # the matmul crop's per-box path (box_indices given)
        return crop.crop_regions_matmul(
            fmap, tf.constant(boxes), np.zeros(len(boxes), np.int32), samples
        )
    if name == "export":  # runtime boxes in the exported graph (the regions): one product
        return _traced(lambda b: crop.crop_one_image(fmap, b, samples), boxes, len(boxes))
    if name == "export_constant":  # boxes known when the export is traced
        return crop.crop_constant(fmap, boxes, samples)
    raise ValueError(name)


def _traced(crop_of, boxes, count):
    """crop_of(boxes) traced with boxes whose values (and, for count None, number) are known
    only at run time, as in a graph."""
    spec = tf.TensorSpec([count, 4], tf.float32)
    return tf.function(crop_of, input_signature=[spec])(tf.constant(boxes))


CROPS = ("crop_and_resize", "matmul", "matmul_gather", "export", "export_constant")


def test_crop_matches_a_hand_computation():
    fmap = np.arange(5 * 5, dtype=np.float32).reshape(1, 5, 5, 1) ** 1.5
    box = np.array([[0.1, 0.2, 0.6, 0.9]], np.float32)  # cells y 0.4..2.4, x 0.8..3.6
    out = crop.crop_regions(tf.constant(fmap), box, tf.constant([0]), 3).numpy()[0, :, :, 0]
    ys, xs = np.linspace(0.4, 2.4, 3), np.linspace(0.8, 3.6, 3)
    expected = np.array([[_hand_bilinear(fmap[0, :, :, 0], y, x) for x in xs] for y in ys])
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_the_reference_is_crop_and_resize_inside_the_map():
    # The reference itself against TensorFlow's kernel, on boxes away from the map's edge.
    rng = np.random.default_rng(1)
    fmap = rng.normal(size=(1, 9, 7, 3)).astype(np.float32)
    boxes = rng.uniform(0.05, 0.95, size=(30, 4)).astype(np.float32)
    want = tf.image.crop_and_resize(fmap, boxes, np.zeros(30, np.int32), (5, 5)).numpy()
    np.testing.assert_allclose(reference_crop(fmap, boxes, 5), want, atol=1e-5)


@pytest.mark.parametrize("name", CROPS)
def test_every_crop_is_the_reference_on_random_boxes(name):
    # Boxes partly outside the map (clipped to it), mirrored ones, and degenerate ones.
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(1, 7, 9, 4)).astype(np.float32)
    boxes = rng.uniform(-0.4, 1.4, size=(40, 4)).astype(np.float32)
    boxes[:5, 2:] = boxes[:5, :2]
    for size in (1, 2, 5):
        got = np.asarray(_crop_with(name, tf.constant(fmap), boxes, size))
        np.testing.assert_allclose(got, reference_crop(fmap, boxes, size), atol=1e-5)


def test_the_matmul_crop_reads_each_boxs_own_image():
    rng = np.random.default_rng(2)
    fmap = rng.normal(size=(3, 7, 9, 4)).astype(np.float32)
    boxes = rng.uniform(0.0, 1.0, size=(6, 4)).astype(np.float32)  # 2 per image, grouped
    owners = np.repeat(np.arange(3, dtype=np.int32), 2)
    want = np.concatenate(
        [reference_crop(fmap[i : i + 1], boxes[2 * i : 2 * i + 2], 3) for i in range(3)]
    )
    for indices in (owners, None):
        got = crop.crop_regions_matmul(tf.constant(fmap), tf.constant(boxes), indices, 3).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
    got = crop.crop_regions(tf.constant(fmap), boxes, owners, 3).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def edge_clipped_boxes(image_size, margin, anchor_sizes, count=48, seed=0):
    """Anchor boxes as the model makes them, clipped to the whole view and to the ten views
    (mirrored ones too), that end on a view's edge: [count, 4], plus the views themselves."""
    shapes = anchors.anchor_shapes(anchor_sizes, (2.0, 1.0, 0.5)) / np.float32(image_size)
    all_views = np.concatenate([views.FULL_VIEW, views.ten_views(image_size, margin)])
    side = np.linspace(-1.0, 1.0, 9, dtype=np.float32)
    grid = np.stack(np.meshgrid(side, side, indexing="ij"), -1).reshape(-1, 2)
    boxes = []
    for view in all_views:
        view_rows = np.repeat(view[None], len(grid), 0)
        boxes.append(anchors.anchor_boxes(grid, view_rows, shapes).numpy().reshape(-1, 4))
    boxes = np.concatenate(boxes)
    edges = np.unique(all_views)
    on_edge = np.isin(boxes, edges).any(axis=1)
    chosen = np.random.default_rng(seed).choice(np.flatnonzero(on_edge), count, replace=False)
    return np.concatenate([all_views, boxes[chosen]]).astype(np.float32)


# (map side, crop size, image size, crop margin, anchor sizes): 8/14 (the whole view at
# voc.flags's N = 128) and 16/28 met crop_and_resize's edge bug before `inside_map`; then each
# recipe at its evaluation size N and its training crop N - m, for its region crop s and its
# spatial head's grid G.
DIGITS, VOC, VOC640 = (12, 24, 40), (80, 160, 320), (100, 200, 400)
CASES = [
    (8, 14, 128, 16, VOC),
    (16, 28, 64, 8, DIGITS),
    *[(side, s, n, 8, DIGITS) for side, n in ((16, 64), (14, 56)) for s in (4, 14)],
    *[(side, s, n, 64, VOC) for side, n in ((32, 512), (28, 448)) for s in (7, 14)],
    *[(side, s, n, 64, VOC640) for side, n in ((40, 640), (36, 576)) for s in (7, 14)],
]


@pytest.mark.parametrize("name", CROPS)
@pytest.mark.parametrize("side, size, image_size, margin, sizes", CASES)
def test_every_crop_is_the_reference_on_edge_clipped_boxes(
    name, side, size, image_size, margin, sizes
):
    boxes = edge_clipped_boxes(image_size, margin, sizes, seed=side * 100 + size)
    fmap = np.random.default_rng(side).normal(size=(1, side, side, 2)).astype(np.float32)
    got = np.asarray(_crop_with(name, tf.constant(fmap), boxes, size))
    # float32 sums of up to 4 terms per sample; the bug this guards against is ~1 apart.
    np.testing.assert_allclose(got, reference_crop(fmap, boxes, size), atol=1e-4)


def test_crop_and_resize_without_the_nudge_still_misses_the_edge():
    # Why `inside_map` exists: TensorFlow's own kernel on the raw whole view of an 8-cell map
    # at 14 samples writes 0 for its last row and column; if a TensorFlow upgrade fixes it,
    # this fails and the nudge can go.
    fmap = np.ones((1, 8, 8, 1), np.float32)
    raw = tf.image.crop_and_resize(fmap, [[0.0, 0.0, 1.0, 1.0]], [0], (14, 14)).numpy()
    assert raw.min() == 0.0
    nudged = crop.crop_regions(tf.constant(fmap), np.array([[0, 0, 1, 1]], np.float32), [0], 14)
    np.testing.assert_allclose(nudged.numpy(), 1.0, atol=1e-6)
