"""EXIF orientation applied as image viewers apply it, alike in every path that decodes an
image: `image_header.decode` (predict), the data pipeline, the SavedModel (issue 29: a phone
photo with orientation 6 was scored and drawn sideways, exit 0, nothing said)."""

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from conftest import run_python
from rarl_tf.data import exif, image_header, pipeline

SAVE_OPTIONS = {"JPEG": {"quality": 95}, "PNG": {}, "WEBP": {"lossless": True}}


def encoded(array: np.ndarray, fmt: str, orientation: int | None) -> bytes:
    """`array` encoded as `fmt`, with an EXIF Orientation tag unless None."""
    buffer = io.BytesIO()
    options = dict(SAVE_OPTIONS[fmt])
    if orientation is not None:
        tags = Image.Exif()
        tags[0x0112] = orientation
        options["exif"] = tags.tobytes()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def as_viewers_show(data: bytes) -> np.ndarray:
    """Pillow's `exif_transpose` of TensorFlow's own decode of `data` (one decoder, so the
    comparison is of the orientation alone)."""
    stored = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    shown = Image.fromarray(stored)
    shown.getexif()[0x0112] = exif_tag(data)
    return np.asarray(ImageOps.exif_transpose(shown))


def exif_tag(data: bytes) -> int:
    return Image.open(io.BytesIO(data)).getexif().get(0x0112, 1)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_every_orientation_is_applied_as_pillows_exif_transpose(fmt):
    array = np.random.default_rng(0).integers(0, 255, (6, 10, 3), np.uint8)
    for orientation in [None, *range(1, 9)]:
        data = encoded(array, fmt, orientation)
        assert exif_tag(data) == (orientation or 1)
        got = image_header.decode(tf.constant(data), 10**6).numpy()
        np.testing.assert_array_equal(got, as_viewers_show(data), err_msg=f"{fmt} {orientation}")
        assert int(exif.orientation(tf.constant(data))) == (orientation or 1)
        assert got.shape[:2] == ((10, 6) if (orientation or 1) >= 5 else (6, 10))


def test_broken_or_odd_tags_read_as_upright():
    array = np.random.default_rng(1).integers(0, 255, (6, 10, 3), np.uint8)
    data = encoded(array, "JPEG", 6)
    start = data.index(b"Exif\x00\x00")
    for broken in [
        data[: start + 12],  # cut inside the EXIF block: no pixels either, but no hang
        data.replace(b"Exif\x00\x00", b"Exif\x00\x01", 1),  # not an EXIF block
        encoded(array, "JPEG", 9),  # out of range
        encoded(array, "JPEG", 0),
        b"",
        b"\xff\xd8\xff",
    ]:
        assert int(exif.orientation(tf.constant(broken))) == 1


def test_the_data_pipeline_sees_the_photo_upright():
    array = np.random.default_rng(2).integers(0, 255, (6, 10, 3), np.uint8)
    data = encoded(array, "JPEG", 6)
    examples = tf.data.Dataset.from_tensor_slices({"image": [data], "labels": [[1.0, 0.0]]})
    (image,) = [ex["image"].numpy() for ex in pipeline.decode(examples)]
    np.testing.assert_array_equal(image, as_viewers_show(data))


def test_serving_default_sees_the_photo_upright(tiny_model_dir, tmp_path):
    from rarl_tf.export import saved_model

    version = saved_model.export(str(tiny_model_dir), str(tmp_path / "serving"))
    serve = tf.saved_model.load(version).signatures["serving_default"]
    array = np.random.default_rng(3).integers(0, 255, (30, 60, 3), np.uint8)
    sideways = encoded(array, "JPEG", 6)
    upright = encoded(as_viewers_show(sideways), "PNG", None)
    got = serve(image_bytes=tf.constant([sideways, upright]))
    np.testing.assert_allclose(got["scores"][0].numpy(), got["scores"][1].numpy(), atol=1e-6)
    np.testing.assert_allclose(got["boxes"][0].numpy(), got["boxes"][1].numpy(), atol=1e-6)


@pytest.mark.slow  # predict as a process (~14 s on a loaded machine); decode is tested above
def test_predict_scores_and_draws_a_phone_photo_upright(tiny_model_dir, tmp_path):
    array = np.random.default_rng(4).integers(0, 255, (30, 60, 3), np.uint8)
    sideways = encoded(array, "JPEG", 6)
    (tmp_path / "phone.jpg").write_bytes(sideways)
    (tmp_path / "upright.png").write_bytes(encoded(as_viewers_show(sideways), "PNG", None))
    result = run_python(
        "-m",
        "rarl_tf.predict",
        f"--model_dir={tiny_model_dir}",
        f"--output_dir={tmp_path / 'out'}",
        str(tmp_path / "phone.jpg"),
        str(tmp_path / "upright.png"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    phone, upright = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert phone["scores"] == upright["scores"]
    drawn = Image.open(phone["attention_image"])
    assert drawn.size == Image.open(upright["attention_image"]).size
    assert drawn.size[1] > drawn.size[0]  # portrait, as the phone shows it
