"""--max_pixels: images are refused from their header, before decoding, wherever they enter."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from entry_points import TINY, run, train_refused
from rarl_tf.data import image_header, pipeline, voc_dir
from rarl_tf.inference import prediction


def encode(fmt, height=5, width=7, **options):
    buffer = io.BytesIO()
    pixels = np.random.default_rng(height * width).integers(0, 255, (height, width, 3), np.uint8)
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def png_declaring(width, height, body=b"\0" * 100):
    """A small valid-looking PNG whose IHDR declares `width` x `height` (the issue's bomb)."""

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        image_header.PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(body))
        + chunk(b"IEND", b"")
    )


BOMB = png_declaring(60_000, 60_000)


def test_the_bomb_is_a_few_hundred_bytes():
    assert len(BOMB) < 200


@pytest.mark.parametrize(
    "fmt, options",
    [("PNG", {}), ("JPEG", {}), ("BMP", {}), ("WEBP", {}), ("WEBP", {"lossless": True})],
)
def test_header_shape_reads_the_declared_size_without_decoding(fmt, options):
    shape = image_header.header_shape(tf.constant(encode(fmt, 5, 7, **options)))
    assert shape.numpy().tolist() == [5, 7]


@pytest.mark.parametrize(
    "data",
    [encode("GIF"), b"", b"text", b"\x89PNG\r\n\x1a\n"],
    ids=["gif (all frames would be decoded)", "empty", "text", "signature"],
)
def test_unsupported_or_headerless_bytes_are_refused(data):
    with pytest.raises(tf.errors.InvalidArgumentError, match="image could not be decoded"):
        image_header.decode(tf.constant(data), 1000)


def test_over_the_limit_is_refused_before_decoding():
    assert image_header.header_shape(tf.constant(BOMB)).numpy().tolist() == [60_000, 60_000]
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 50000000 pixels"):
        image_header.decode(tf.constant(BOMB), 50_000_000)
    # 2^32 - 1 on each side: the product would overflow an int64.
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than"):
        image_header.decode(tf.constant(png_declaring(2**32 - 1, 2**32 - 1)), 50_000_000)
    assert image_header.decode(tf.constant(encode("PNG", 20, 30)), 600).shape == (20, 30, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 599 pixels"):
        image_header.decode(tf.constant(encode("PNG", 20, 30)), 599)


def test_training_stream_skips_counts_and_names_the_bomb(capfd):
    good = [encode("PNG", 12, 12 + i) for i in range(5)]
    examples = tf.data.Dataset.from_tensor_slices(
        {
            "image": good[:2] + [BOMB] + good[2:],
            "labels": np.eye(6, dtype=np.float32),
            "name": ["a.png", "b.png", "bomb.png", "c.png", "d.png", "e.png"],
        }
    )
    counter = pipeline.SkipCounter()
    settings = pipeline.StreamSettings(batch_size=2, image_size=10, crop_margin=2, seed=0)
    stream = pipeline.train_stream(examples, settings, 6, 0, 2, counter)
    batches = list(stream)
    assert len(batches) == 2 and all(b[0].shape == (2, 8, 8, 3) for b in batches)
    err = capfd.readouterr().err
    assert "warning: skipped image" in err and "bomb.png" in err and "60000 x 60000" in err
    # The training stream ends mid-way through its spare pass, so how many skips the counter has
    # seen when it stops depends on tf.data's read-ahead; over a whole split the count is exact.
    whole = pipeline.SkipCounter()
    assert len(list(pipeline.decode(examples, whole))) == 5 and whole.undecodable == 1


def test_voc_folder_images_over_the_limit_are_named_by_path(tmp_path, capfd):
    from voc_files import write_voc

    voc_dir.read_split.cache_clear()
    root = write_voc(
        tmp_path / "VOC2007",
        {
            "000001": ([("dog", False)], encode("JPEG", 10, 10)),
            "000002": ([("cat", False)], encode("JPEG", 40, 40)),  # 1600 pixels
            "000003": ([("car", False)], encode("JPEG", 10, 12)),
        },
    )
    counter = pipeline.SkipCounter()
    examples = voc_dir.load(str(root), "trainval", False, 0)
    batches = list(pipeline.eval_batches(examples, 8, 8, counter, max_pixels=1000))
    assert batches[0][0].shape[0] == 2 and counter.undecodable == 1
    assert "000002.jpg" in capfd.readouterr().err


def test_load_image_refuses_the_bomb_and_names_it(tmp_path):
    bomb, good = tmp_path / "bomb.png", tmp_path / "good.png"
    bomb.write_bytes(BOMB)
    good.write_bytes(encode("PNG", 20, 30))
    with pytest.raises(
        ValueError,
        match=r"image \S+bomb.png refused: its header declares more "
        r"than 50000000 pixels",
    ):
        prediction.load_image(str(bomb))
    assert prediction.load_image(str(good)).size == (30, 20)
    with pytest.raises(ValueError, match="more than 599 pixels"):
        prediction.load_image(str(good), max_pixels=599)
    # Pillow's own global limit is left as it was.
    assert Image.MAX_IMAGE_PIXELS == 89_478_485


def test_predict_answers_the_good_images_around_a_bomb(tiny_model_dir, tmp_path):
    first, bomb, last = tmp_path / "first.png", tmp_path / "bomb.png", tmp_path / "last.jpg"
    first.write_bytes(encode("PNG", 50, 70))
    bomb.write_bytes(BOMB)
    last.write_bytes(encode("JPEG", 33, 33))
    result = run(
        "rarl_tf.predict",
        f"--model_dir={tiny_model_dir}",
        str(first),
        str(bomb),
        str(last),
        data_dir=tmp_path / "tfds",
    )
    assert result.returncode == 1
    assert [json.loads(line)["image"] for line in result.stdout.strip().splitlines()] == [
        str(first),
        str(last),
    ]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bomb.png refused" in errors[0] and "--max_pixels" in errors[0]
    assert "Traceback" not in result.stderr


def test_max_pixels_below_one_is_a_flag_error(tmp_path):
    assert "--max_pixels=0 is not allowed" in train_refused(tmp_path, *TINY, "--max_pixels=0")
