import numpy as np
import pytest
import tensorflow as tf

from rarl_tf.model import anchors


def test_shapes_have_the_requested_areas_and_ratios():
    shapes = anchors.anchor_shapes((80, 160, 320), (2.0, 1.0, 0.5))
    assert shapes.shape == (9, 2)
    heights, widths = shapes[:, 0], shapes[:, 1]
    np.testing.assert_allclose(
        heights * widths, np.repeat([80.0**2, 160.0**2, 320.0**2], 3), rtol=1e-6
    )
    np.testing.assert_allclose(widths / heights, np.tile([2.0, 1.0, 0.5], 3), rtol=1e-6)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="> 0"):
        anchors.anchor_shapes((80, -1), (1.0,))
    with pytest.raises(ValueError, match="at least one"):
        anchors.anchor_shapes((), (1.0,))


def test_boxes_are_centred_on_the_location():
    shapes = anchors.anchor_shapes((10, 20), (2.0, 1.0, 0.5)) / 100.0
    loc = tf.constant([[0.0, 0.0], [-0.2, 0.4]])
    boxes = anchors.anchor_boxes(loc, tf.constant([[0.0, 0.0, 1.0, 1.0]] * 2), shapes).numpy()
    assert boxes.shape == (2, 6, 4)
    centres = np.stack(
        [(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1
    )
    np.testing.assert_allclose(centres[0], np.full((6, 2), 0.5), atol=1e-6)
    np.testing.assert_allclose(centres[1], np.tile([[0.4, 0.7]], (6, 1)), atol=1e-6)
    # Unclipped boxes keep their nominal size.
    np.testing.assert_allclose(boxes[0, :, 2] - boxes[0, :, 0], shapes[:, 0], atol=1e-6)
    np.testing.assert_allclose(boxes[0, :, 3] - boxes[0, :, 1], shapes[:, 1], atol=1e-6)


def test_boxes_are_clipped_to_the_view():
    shapes = np.array([[0.5, 0.5]], np.float32)
    view = tf.constant([[0.1, 0.2, 0.9, 0.8]])
    boxes = anchors.anchor_boxes(tf.constant([[-1.0, 1.0]]), view, shapes).numpy()[0, 0]
    # Centre at the view's top-right corner (0.1, 0.8): half of the box is cut away each way.
    np.testing.assert_allclose(boxes, [0.1, 0.55, 0.35, 0.8], atol=1e-6)


def test_location_maps_into_a_sub_view():
    point = anchors.location_to_point(
        tf.constant([[0.0, -1.0]]), tf.constant([[0.2, 0.4, 0.6, 1.0]])
    ).numpy()
    np.testing.assert_allclose(point, [[0.4, 0.4]], atol=1e-6)


def test_mirrored_view_mirrors_the_boxes():
    shapes = np.array([[0.2, 0.4]], np.float32)
    loc = tf.constant([[0.0, -0.5]])
    plain = anchors.anchor_boxes(loc, tf.constant([[0.0, 0.0, 1.0, 1.0]]), shapes).numpy()[0, 0]
    mirrored = anchors.anchor_boxes(loc, tf.constant([[0.0, 1.0, 1.0, 0.0]]), shapes).numpy()[0, 0]
    # x = -0.5 in a mirrored view is 0.75 on the map; x1 > x2 marks the mirrored crop.
    np.testing.assert_allclose(plain, [0.4, 0.05, 0.6, 0.45], atol=1e-6)
    np.testing.assert_allclose(mirrored, [0.4, 0.95, 0.6, 0.55], atol=1e-6)
