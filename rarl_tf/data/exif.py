"""EXIF orientation, read and applied in the graph, so that every path that decodes an image
(`image_header.decode`: the training and evaluation pipelines, the SavedModel's
`serving_default`, `rarl_tf.predict`) sees it upright, as image viewers show it.

Phones store a photo as the sensor read it and record how to turn it in the EXIF Orientation
tag (0x0112: 1 upright, 6 turned 90 degrees clockwise, ...); TensorFlow's decoders ignore the
tag, so a portrait photo was scored and drawn sideways. The tag is looked for where each
format keeps it: a JPEG's APP1 "Exif" segment, a PNG's eXIf chunk, a WebP's EXIF chunk; its
value is applied as Pillow's `ImageOps.exif_transpose` applies it. A missing, broken or
out-of-range tag means 1 (the pixels as stored). Pure TensorFlow ops (the SavedModel has no
Python), every read bounded: at most `MAX_SEGMENTS` segments or chunks and `MAX_ENTRIES`
directory entries are looked at, and reads past the end read zeros.
"""

from __future__ import annotations

import tensorflow as tf

ORIENTATION_TAG = 0x0112
MAX_SEGMENTS = 64
MAX_ENTRIES = 64
_ZEROS = b"\x00" * 8


def _substr(data: tf.Tensor, size: tf.Tensor, pos: tf.Tensor, length: int) -> tf.Tensor:
    """Bytes [pos, pos + length) of `data`, shorter (or empty) where it ends."""
    return tf.strings.substr(data, tf.clip_by_value(pos, 0, size), length)


def _uint(data, size, pos, length: int, big_endian) -> tf.Tensor:
    """The unsigned integer in bytes [pos, pos + length) (zeros past the end), int64."""
    chunk = tf.strings.join([_substr(data, size, pos, length), _ZEROS])
    raw = tf.cast(tf.io.decode_raw(chunk, tf.uint8)[:length], tf.int64)
    powers = [256**i for i in range(length)]
    weights = tf.where(
        big_endian, tf.constant(powers[::-1], tf.int64), tf.constant(powers, tf.int64)
    )
    return tf.reduce_sum(raw * weights)


def _scan(data, size, start: int, step_fn) -> tf.Tensor:
    """Walks segments or chunks from `start`: step_fn(pos) -> (next pos, where the EXIF data
    begins or -1, stop). Returns that offset, or -1 if none within MAX_SEGMENTS."""

    def cond(i, pos, found):
        return (i < MAX_SEGMENTS) & (found < 0) & (pos + 8 <= size)

    def body(i, pos, found):
        following, here, stop = step_fn(pos)
        return i + 1, tf.where(stop, size, following), here

    _, _, found = tf.while_loop(
        cond, body, (tf.constant(0), tf.constant(start, tf.int64), tf.constant(-1, tf.int64))
    )
    return found


def _jpeg_tiff(data, size) -> tf.Tensor:
    def step(pos):  # FF xx, then a big-endian length that counts itself
        marker, length = _uint(data, size, pos, 2, True), _uint(data, size, pos + 2, 2, True)
        exif = (marker == 0xFFE1) & tf.equal(_substr(data, size, pos + 4, 6), b"Exif\x00\x00")
        stop = (marker < 0xFF00) | (marker == 0xFFDA) | (length < 2)  # not a marker, or SOS
        return pos + 2 + length, tf.where(exif, pos + 10, tf.constant(-1, tf.int64)), stop

    return _scan(data, size, 2, step)


def _png_tiff(data, size) -> tf.Tensor:
    def step(pos):  # big-endian length, type, data, CRC
        length, kind = _uint(data, size, pos, 4, True), _substr(data, size, pos + 4, 4)
        exif = tf.equal(kind, b"eXIf")
        stop = tf.equal(kind, b"IDAT") | tf.equal(kind, b"IEND")
        return pos + 12 + length, tf.where(exif, pos + 8, tf.constant(-1, tf.int64)), stop

    return _scan(data, size, 8, step)


def _webp_tiff(data, size) -> tf.Tensor:
    def step(pos):  # type, little-endian size, data padded to an even length
        kind, length = _substr(data, size, pos, 4), _uint(data, size, pos + 4, 4, False)
        start = pos + 8
        # Some writers keep JPEG's "Exif\0\0" before the TIFF header.
        start = tf.where(tf.equal(_substr(data, size, start, 6), b"Exif\x00\x00"), start + 6, start)
        exif = tf.equal(kind, b"EXIF")
        return pos + 8 + length + length % 2, tf.where(exif, start, -1), tf.constant(False)

    return _scan(data, size, 12, step)


def _tiff_orientation(data, size, tiff) -> tf.Tensor:
    """The Orientation value in IFD0 of the TIFF structure at `tiff`, or 1."""
    order = _substr(data, size, tiff, 2)
    big = tf.equal(order, b"MM")
    valid = big | tf.equal(order, b"II")
    ifd = tiff + _uint(data, size, tiff + 4, 4, big)
    count = tf.minimum(_uint(data, size, ifd, 2, big), MAX_ENTRIES)

    def cond(j, value):
        return (j < count) & (value < 0)

    def body(j, value):
        entry = ifd + 2 + 12 * j
        found = _uint(data, size, entry, 2, big) == ORIENTATION_TAG
        return j + 1, tf.where(found, _uint(data, size, entry + 8, 2, big), value)

    _, value = tf.while_loop(cond, body, (tf.constant(0, tf.int64), tf.constant(-1, tf.int64)))
    usable = valid & (value >= 1) & (value <= 8)
    return tf.cast(tf.where(usable, value, 1), tf.int32)


# Not rewritten by AutoGraph: as image_header's functions (tf.cond / tf.while_loop only).
@tf.autograph.experimental.do_not_convert
def orientation(data: tf.Tensor) -> tf.Tensor:
    """The EXIF Orientation (1-8, int32 scalar) of the encoded image `data` (a scalar
    string); 1 where there is none."""
    size = tf.cast(tf.strings.length(data), tf.int64)
    is_png = tf.equal(_substr(data, size, tf.constant(0, tf.int64), 4), b"\x89PNG")
    is_webp = tf.equal(_substr(data, size, tf.constant(8, tf.int64), 4), b"WEBP")
    tiff = tf.case(
        [
            (tf.io.is_jpeg(data), lambda: _jpeg_tiff(data, size)),
            (is_png, lambda: _png_tiff(data, size)),
            (is_webp, lambda: _webp_tiff(data, size)),
        ],
        default=lambda: tf.constant(-1, tf.int64),
    )
    return tf.cond(tiff >= 0, lambda: _tiff_orientation(data, size, tiff), lambda: tf.constant(1))


def _transpose(image):
    return tf.transpose(image, [1, 0, 2])


@tf.autograph.experimental.do_not_convert
def apply(image: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
    """`image` [H, W, C] turned upright for the Orientation `value`, as Pillow's
    `ImageOps.exif_transpose` does (2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90
    clockwise, 7 transverse, 8 rotate 90 counter-clockwise)."""
    branches = [
        lambda: image,  # 0: not a value; as 1
        lambda: image,
        lambda: tf.reverse(image, [1]),
        lambda: tf.image.rot90(image, 2),
        lambda: tf.reverse(image, [0]),
        lambda: _transpose(image),
        lambda: tf.image.rot90(image, 3),
        lambda: tf.image.rot90(_transpose(image), 2),
        lambda: tf.image.rot90(image, 1),
    ]
    return tf.switch_case(tf.clip_by_value(value, 0, 8), branches)
