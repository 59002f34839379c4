import keras
import numpy as np
import tensorflow as tf

from rarl_tf.model.factory import build_model
from rarl_tf.model.views import ten_views


def _batch(n=4, side=32, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, size=(n, side, side, 3)).astype(np.float32)
    labels = (rng.uniform(size=(n, classes)) < 0.4).astype(np.float32)
    labels[0] = 0.0  # one image without labels
    return images, labels


def test_output_shapes_of_every_step(tiny_config):
    model = build_model(tiny_config, num_classes=5)
    images, _ = _batch()
    out = model(images, training=False)
    t, k, c = 2, 9, 5  # 3 anchor sizes x 3 aspect ratios
    assert out["region_logits"].shape == (4, 1, t, k, c)
    assert out["boxes"].shape == (4, 1, t, k, 4)
    assert out["locations"].shape == (4, 1, t, 2)
    assert out["log_probs"].shape == (4, 1, t)
    assert out["baselines"].shape == (4, 1, t)
    assert out["logits"].shape == (4, c) and out["probs"].shape == (4, c)
    assert model.backbone(images).shape == (4, 16, 16, 16)
    np.testing.assert_allclose(out["probs"].numpy().sum(-1), 1.0, rtol=1e-5)


def test_category_wise_max_pooling(tiny_config):
    keras.utils.set_random_seed(0)  # the second check depends on the initial weights
    model = build_model(tiny_config, num_classes=5)
    out = model(_batch()[0], training=False)
    regions = out["region_logits"].numpy()
    np.testing.assert_allclose(out["logits"].numpy(), regions[:, 0].max(axis=(1, 2)), rtol=1e-6)
    # Each class's maximum comes from some region: pooling is per category, not per region.
    best = regions[:, 0].reshape(4, -1, 5).argmax(1)
    assert not np.all(best == best[:, :1])


def test_ten_views_average_and_inference_is_deterministic(tiny_config):
    model = build_model(tiny_config, num_classes=5)
    images = _batch(side=40)[0]
    views = ten_views(40, 8)
    out = model(images, training=False, views=views)
    assert out["view_logits"].shape == (4, 10, 5)
    expected = tf.nn.softmax(out["view_logits"], -1).numpy().mean(1)
    np.testing.assert_allclose(out["probs"].numpy(), expected, rtol=1e-5)
    again = model(images, training=False, views=views)
    np.testing.assert_allclose(again["probs"].numpy(), out["probs"].numpy(), rtol=1e-6)


def test_loss_is_finite_for_an_image_without_labels(tiny_config):
    model = build_model(tiny_config, num_classes=5)
    images, labels = _batch()
    terms = model.compute_terms(model(images, training=True), labels)
    for name, value in terms.items():
        assert np.all(np.isfinite(value.numpy())), name
    # No label: no REINFORCE signal, since the reward is undefined.
    assert terms["reinforce_loss"].numpy()[0] == 0.0


def test_reinforce_gradient_reaches_the_location_head_not_the_sample(tiny_config):
    model = build_model(tiny_config, num_classes=5)
    images, labels = _batch()
    labels[0, 0] = 1.0
    with tf.GradientTape(persistent=True) as tape:
        out = model(images, training=True)
        terms = model.compute_terms(out, labels)
        surrogate = tf.reduce_mean(terms["reinforce_loss"])
    loc_kernel = model.agent.policy.location_head.mean_head.kernel
    grad = tape.gradient(surrogate, loc_kernel)
    assert grad is not None and float(tf.norm(grad)) > 0.0
    # The sampled locations (and the boxes cut from them) carry no gradient.
    assert tape.gradient(tf.reduce_sum(out["locations"]), loc_kernel) is None
    assert tape.gradient(tf.reduce_sum(out["boxes"]), loc_kernel) is None
    # The classification loss does not train the location head: only REINFORCE does.
    cls = tf.reduce_mean(terms["cls_loss"])
    assert tape.gradient(cls, loc_kernel) is None


def test_log_prob_is_a_log_density_of_the_sample(tiny_config):
    model = build_model(tiny_config, num_classes=5)
    out = model(_batch()[0], training=True)
    loc, mean = out["locations"].numpy(), out["means"].numpy()
    sigma = tiny_config.loc_std
    # Where the sample was not clipped, log_prob is the Gaussian log density, summed over (y, x).
    inside = np.all(np.abs(loc) < 1.0, axis=-1)
    expected = (-0.5 * ((loc - mean) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))).sum(-1)
    np.testing.assert_allclose(out["log_probs"].numpy()[inside], expected[inside], rtol=1e-4)
    assert np.any(np.abs(loc - mean) > 1e-3), "training must sample, not take the mean"


def test_short_training_run_lowers_the_loss(tiny_config):
    keras.utils.set_random_seed(0)
    model = build_model(tiny_config, num_classes=5)
    images, labels = _batch(n=32, seed=1)
    labels[0, 1] = 1.0
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    history = model.fit(images, labels, batch_size=8, epochs=15, verbose=0).history
    # The full hybrid loss is trained; its classification part must fall well below its start.
    assert history["cls_loss"][-1] < 0.7 * history["cls_loss"][0], history["cls_loss"]
    assert all(np.isfinite(history["loss"]))


def test_image_size_known_only_at_run_time(tiny_config):
    model = build_model(tiny_config, num_classes=5)
    images = _batch(side=40)[0]
    static = model(images, training=False)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def dynamic(x):
        return model(x, training=False)["probs"]

    np.testing.assert_allclose(dynamic(images).numpy(), static["probs"].numpy(), rtol=1e-5)
