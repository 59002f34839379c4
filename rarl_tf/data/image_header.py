"""Image sizes read from the header, so an image is refused before its pixels are allocated.

A 180-byte PNG can declare 60,000 x 60,000 pixels (10.8 GB as uint8 RGB); decoding it first and
checking afterwards is too late. Every place an image enters (the training and evaluation
pipelines, the SavedModel's `serving_default`, `rarl_tf.predict`) reads the declared size first
and refuses images over one limit, `--max_pixels` (default `experiment.DEFAULT_MAX_PIXELS`).

In the graph (this module) only formats whose header gives the full decoded size are accepted:
JPEG, PNG, BMP and still WebP. GIF and animated WebP are refused, because TensorFlow decodes
every frame of them (frames x canvas pixels, which the header does not bound).

`decode` turns the pixels upright by the image's EXIF orientation (`rarl_tf.data.exif`), so
every path sees a phone photo as image viewers show it.
"""

from __future__ import annotations

import sys

import tensorflow as tf

from rarl_tf.data import exif

FORMATS = "JPEG, PNG, BMP or still WebP"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Every field read below lies in the first 30 bytes; padding lets short inputs be read safely
# (their fields read as zero, which makes the size unknown, so they are refused).
_PAD = b"\x00" * 32


def _uint(padded: tf.Tensor, start: int, length: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer stored in bytes [start, start + length) of `padded`, as int64."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, start, length), tf.uint8), tf.int64)
    powers = [256**i for i in range(length)]
    weights = tf.constant(powers[::-1] if big_endian else powers, tf.int64)
    return tf.reduce_sum(raw * weights)


def _bmp_shape(padded: tf.Tensor) -> tf.Tensor:
    # BITMAPINFOHEADER: signed int32 width at 18, height at 22 (negative: stored top-down), as
    # TensorFlow's decode_bmp reads them.
    def signed(value):
        return tf.where(value >= 2**31, value - 2**32, value)

    width, height = signed(_uint(padded, 18, 4, False)), signed(_uint(padded, 22, 4, False))
    return tf.stack([tf.abs(height), tf.where(width > 0, width, -1)])


def _webp_shape(padded: tf.Tensor) -> tf.Tensor:
    """(height, width) of a still WebP; (-1, -1) for an animated one or an unknown chunk."""
    chunk = tf.strings.substr(padded, 12, 4)
    # VP8 (lossy): 14-bit sizes after the 3-byte start code at 23.
    lossy = tf.stack([_uint(padded, 28, 2, False) % 2**14, _uint(padded, 26, 2, False) % 2**14])
    # VP8L (lossless): after the 0x2f signature at 20, 14 bits width - 1 then 14 bits height - 1.
    bits = _uint(padded, 21, 4, False)
    lossless = tf.stack([(bits // 2**14) % 2**14 + 1, bits % 2**14 + 1])
    # VP8X (extended): 24-bit canvas width - 1 at 24 and height - 1 at 27; flag 0x02 = animated.
    animated = (_uint(padded, 20, 1, False) // 2) % 2 == 1
    canvas = tf.stack([_uint(padded, 27, 3, False) + 1, _uint(padded, 24, 3, False) + 1])
    extended = tf.where(animated, tf.constant([-1, -1], tf.int64), canvas)
    unknown = tf.constant([-1, -1], tf.int64)
    return tf.where(
        tf.equal(chunk, b"VP8 "),
        lossy,
        tf.where(
            tf.equal(chunk, b"VP8L"),
            lossless,
            tf.where(tf.equal(chunk, b"VP8X"), extended, unknown),
        ),
    )


# Traced as written, not rewritten by AutoGraph (tf.data's map converts what it is given, each
# time a pipeline is built): these functions branch with tf.cond / tf.while_loop only
# (docs/design.md).
@tf.autograph.experimental.do_not_convert
def header_shape(data: tf.Tensor) -> tf.Tensor:
    """(height, width), int64 [2], as the header of `data` (a scalar string) declares them.

    (-1, -1) when `data` is not a JPEG, PNG, BMP or still WebP image. Reads no pixel; a JPEG
    whose header is broken raises InvalidArgumentError (TensorFlow's header reader refuses it).
    """
    padded = tf.strings.join([data, _PAD])
    is_png = tf.equal(tf.strings.substr(padded, 0, 8), PNG_SIGNATURE) & tf.equal(
        tf.strings.substr(padded, 12, 4), b"IHDR"
    )
    is_bmp = tf.equal(tf.strings.substr(padded, 0, 2), b"BM")
    is_webp = tf.equal(tf.strings.substr(padded, 0, 4), b"RIFF") & tf.equal(
        tf.strings.substr(padded, 8, 4), b"WEBP"
    )
    # PNG IHDR: big-endian width then height at byte 16.
    png = tf.stack([_uint(padded, 20, 4, True), _uint(padded, 16, 4, True)])
    unknown = tf.constant([-1, -1], tf.int64)
    other = tf.where(
        is_png,
        png,
        tf.where(is_bmp, _bmp_shape(padded), tf.where(is_webp, _webp_shape(padded), unknown)),
    )
    # extract_jpeg_shape fails on non-JPEG bytes, so it only runs for JPEGs.
    return tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64),
        lambda: other,
    )


@tf.autograph.experimental.do_not_convert
def check_size(data: tf.Tensor, max_pixels: int, name: tf.Tensor | str | None = None) -> tf.Tensor:
    """Raises InvalidArgumentError (when run) unless `data` is a supported image of at most
    `max_pixels` pixels; returns its (height, width), int64 [2].

    Args:
      name: what to call the image in the line printed (to stderr) when it is over the limit;
        None prints nothing (the error message says it).
    """
    shape = header_shape(data)
    known = tf.reduce_all(shape > 0)
    # In float64: two 32-bit sizes can overflow an int64 product.
    pixels = tf.cast(shape[0], tf.float64) * tf.cast(shape[1], tf.float64)
    over = known & (pixels > float(max_pixels))
    if name is not None:

        def warn():
            tf.print(
                "warning: skipped image",
                name,
                ": its header declares",
                shape[0],
                "x",
                shape[1],
                f"pixels, more than --max_pixels={max_pixels}",
                output_stream=sys.stderr,
            )
            return tf.constant(True)

        tf.cond(over, warn, lambda: tf.constant(False))
    supported = tf.debugging.Assert(
        known, [f"image could not be decoded: expected {FORMATS} bytes"], summarize=1
    )
    with tf.control_dependencies([supported]):
        small = tf.debugging.Assert(
            tf.logical_not(over),
            [
                f"image refused: more than {max_pixels} pixels (--max_pixels); its header declares",
                shape,
            ],
            summarize=2,
        )
    with tf.control_dependencies([small]):
        return tf.identity(shape)


@tf.autograph.experimental.do_not_convert
def decode(data: tf.Tensor, max_pixels: int, name: tf.Tensor | str | None = None) -> tf.Tensor:
    """uint8 [H, W, 3] pixels of `data`, after `check_size` (which may refuse it), turned
    upright by its EXIF orientation as image viewers turn it (`exif`)."""
    shape = check_size(data, max_pixels, name)
    with tf.control_dependencies([shape]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    image = exif.apply(image, exif.orientation(data))
    image.set_shape([None, None, 3])
    return image
