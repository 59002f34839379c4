import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import run_python
from rarl_tf.export import saved_model
from rarl_tf.export.registry import EXPORTERS
from rarl_tf.inference.prediction import keras_predict
from rarl_tf.model_folder import load_trained


def _encode(array, fmt, mode):
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    """`python -m export.saved_model` run as a user runs it: (the export base, its first
    version's folder, that version loaded)."""
    base = tmp_path_factory.mktemp("serving")
    result = run_python(
        "-m", "export.saved_model", f"--model_dir={tiny_model_dir}", f"--export_base={base}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first = str(base / "1")
    assert result.stdout.strip().splitlines()[-1] == f"SavedModel written to {first}"
    return base, first, tf.saved_model.load(first)


def test_versions_are_numbered_and_never_overwritten(exported, tiny_model_dir):
    base, first, _ = exported
    assert first == str(base / "1")
    second = saved_model.export(str(tiny_model_dir), str(base))
    assert second == str(base / "2")
    assert sorted(p.name for p in base.iterdir() if not p.name.startswith(".")) == ["1", "2"]


def test_the_registry_runs_predict_pixels_as_keras(exported, tiny_model_dir):
    """As tools.export_accuracy runs it: N x N pixels (rounded to uint8 by the loader) give the
    Keras model's outputs on the same rounded pixels."""
    _, first, _ = exported
    model, config = load_trained(str(tiny_model_dir))
    side = config.model.image_size
    pixels = np.random.default_rng(0).uniform(0, 255, (2, side, side, 3)).astype(np.float32)
    got = EXPORTERS["saved_model"].load(first)(pixels)
    want = keras_predict(model, np.round(pixels))
    for name in ("probs", "boxes"):  # the SavedModel answers no centres
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)


@pytest.mark.parametrize(
    "fmt, mode", [("JPEG", "RGB"), ("PNG", "RGB"), ("PNG", "L"), ("PNG", "RGBA"), ("JPEG", "L")]
)
def test_serving_default_equals_keras(exported, tiny_model_dir, fmt, mode):
    _, _, loaded = exported
    model, config = load_trained(str(tiny_model_dir))
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (h, w, 3), np.uint8) for h, w in ((50, 70), (33, 33))]
    data = [_encode(a, fmt, mode) for a in arrays]
    got = loaded.signatures["serving_default"](image_bytes=tf.constant(data))
    for i, blob in enumerate(data):
        # The reference decodes the same bytes with TensorFlow's decoder, so the comparison is of
        # the exported graph against the Keras model, not of two JPEG decoders.
        pixels = tf.io.decode_image(blob, channels=3, expand_animations=False)
        from rarl_tf.data.pipeline import resize

        want = keras_predict(model, resize(pixels, config.model.image_size).numpy()[None])
        np.testing.assert_allclose(got["scores"][i].numpy(), want["probs"][0], atol=1e-5)
        np.testing.assert_allclose(got["boxes"][i].numpy(), want["boxes"][0], atol=1e-5)
    assert got["boxes"].shape == (2, 2, 9, 4)  # [images, T, k, 4]
    top = got["top_scores"].numpy()
    names = got["top_names"].numpy()
    classes = got["top_classes"].numpy()
    assert np.all((top >= 0.1) | (classes == -1))
    for row_names, row_classes in zip(names, classes):
        for name, cls in zip(row_names, row_classes):
            assert name.decode() == ("" if cls < 0 else str(cls))


def test_predict_pixels_signature(exported, tiny_model_dir):
    _, _, loaded = exported
    pixels = np.random.default_rng(1).integers(0, 255, (3, 40, 60, 3), np.uint8)
    out = loaded.signatures["predict_pixels"](pixels=tf.constant(pixels))
    np.testing.assert_allclose(out["scores"].numpy().sum(-1), 1.0, rtol=1e-5)
    assert out["top_classes"].shape == (3, 3)


def test_bytes_that_do_not_decode_are_refused_clearly(exported):
    _, _, loaded = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match="image could not be decoded"):
        loaded.signatures["serving_default"](image_bytes=tf.constant([b"definitely not a jpeg"]))


def test_images_over_the_pixel_limit_are_refused(tiny_model_dir, tmp_path):
    model, config = load_trained(str(tiny_model_dir))
    module = saved_model.build_serving_module(
        model, config.model.image_size, config.class_names, max_pixels=1000
    )
    big = _encode(np.zeros((40, 40, 3), np.uint8), "PNG", "RGB")  # 1600 pixels
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 1000 pixels"):
        module.serve_bytes(tf.constant([big]))
    jpeg = _encode(np.zeros((40, 40, 3), np.uint8), "JPEG", "RGB")
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 1000 pixels"):
        module.serve_bytes(tf.constant([jpeg]))


def test_warmup_requests_are_read_back_and_run_through_their_signatures(exported, tiny_model_dir):
    from tensorflow_serving.apis import prediction_log_pb2

    base, first, loaded = exported
    path = os.path.join(first, "assets.extra", "tf_serving_warmup_requests")
    assert path.endswith(saved_model.WARMUP_FILE)
    records = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(path)
    ]
    assert [r.predict_log.request.model_spec.signature_name for r in records] == [
        "serving_default",
        "predict_pixels",
    ]
    model, config = load_trained(str(tiny_model_dir))
    for record in records:
        request = record.predict_log.request
        assert request.model_spec.name == base.name
        inputs = {
            name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()
        }
        out = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert out["scores"].shape == (1, 10)
        np.testing.assert_allclose(out["scores"].numpy().sum(), 1.0, atol=1e-5)
        # Mid-grey pixels, whichever way they come in, score as the Keras model scores them.
        side = config.model.image_size
        want = keras_predict(model, np.full((1, side, side, 3), 128.0, np.float32))
        np.testing.assert_allclose(out["scores"].numpy(), want["probs"], atol=1e-5)
