"""Fuzz harness: random, truncated and mutated image bytes through every place images enter.

    python tests/fuzz_images.py MODEL_DIR WORK_DIR [SEED]

Feeds each input to `prediction.load_image` (predict, Keras and TFLite), the pipeline's decode
(training and evaluation) and the exported SavedModel's `serving_default`. Each must decode the
input or refuse it the documented way (ValueError / dropped and counted / InvalidArgumentError);
anything else is a crash. Prints one JSON line of counts. Run in its own process by
tests/inference/test_fuzz_images.py, so a segfault, an out-of-memory kill or a hang is seen, not
suffered.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HUGE = 60_000  # per side: 3.6e9 pixels, far over the default --max_pixels


def _encode(rng, fmt: str, **options) -> bytes:
    from PIL import Image

    height, width = (int(v) for v in rng.integers(1, 48, 2))
    pixels = rng.integers(0, 256, (height, width, 3), np.uint8)
    image = Image.fromarray(pixels)
    mode = options.pop("mode", None)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(width: int, height: int, fix_crc: bool = True) -> bytes:
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if not fix_crc:
        ihdr = ihdr[:-4] + b"\0\0\0\0"
    body = _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + ihdr + body + _png_chunk(b"IEND", b"")


def _resized_header(fmt: str, data: bytes, height: int, width: int) -> tuple[bytes, int]:
    """`data` with the size in its header replaced (the body left as it was), and the number
    of pixels the new header declares (the fields are 16, 24 or 32 bits wide)."""
    out = bytearray(data)
    pixels = height * width
    if fmt in ("JPEG", "GIF"):
        pixels = (height % 65536) * (width % 65536)
    if fmt == "WEBP":
        pixels = ((height - 1) % 2**24 + 1) * ((width - 1) % 2**24 + 1)
    if fmt == "JPEG":
        sof = next(i for i in range(len(out) - 1) if out[i] == 0xFF and out[i + 1] in (0xC0, 0xC2))
        out[sof + 5 : sof + 9] = struct.pack(">HH", height % 65536, width % 65536)
    elif fmt == "PNG":
        ihdr = out[12:29]
        ihdr[4:12] = struct.pack(">II", width, height)
        out[12:29] = ihdr
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    elif fmt == "BMP":
        out[18:26] = struct.pack("<ii", width, height)
    elif fmt == "GIF":
        out[6:10] = struct.pack("<HH", width % 65536, height % 65536)
    elif fmt == "WEBP":  # an extended (VP8X) header declaring the canvas
        vp8x = (
            b"VP8X"
            + struct.pack("<I", 10)
            + b"\0\0\0\0"
            + struct.pack("<I", (width - 1) % 2**24)[:3]
            + struct.pack("<I", (height - 1) % 2**24)[:3]
        )
        out = bytearray(
            b"RIFF" + struct.pack("<I", 4 + len(vp8x) + len(data) - 12) + b"WEBP" + vp8x + data[12:]
        )
    return bytes(out), pixels


def _mutated(rng, data: bytes, flips: int) -> bytes:
    out = bytearray(data)
    for position in rng.integers(0, len(out), flips):
        out[position] = int(rng.integers(0, 256))
    return bytes(out)


def inputs(seed: int = 0) -> list[tuple[str, bytes]]:
    """(category, bytes) pairs: about 350, the same for the same seed."""
    rng = np.random.default_rng(seed)
    kinds = [
        ("PNG", {}),
        ("PNG", {"mode": "L"}),
        ("PNG", {"mode": "RGBA"}),
        ("PNG", {"mode": "P"}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("BMP", {}),
        ("GIF", {}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
    ]
    cases = []
    for fmt, options in kinds:
        for _ in range(3):
            data = _encode(rng, fmt, **dict(options))
            cases.append(("valid", data))
            for cut in rng.integers(1, len(data), 3):
                cases.append(("truncated", data[:cut]))
            for flips in (1, 4, 32):
                cases.append(("mutated", _mutated(rng, data, flips)))
            for height, width in ((HUGE, HUGE), (1, 2**31 - 1), (0, 5), (7, 9), (500, 3)):
                resized, pixels = _resized_header(fmt, data, height, width)
                cases.append(("huge" if pixels > 50_000_000 else "wrong_size", resized))
    for width, height, fix in (
        (HUGE, HUGE, True),
        (HUGE, HUGE, False),
        (2**32 - 1, 2**32 - 1, True),
        (2**31 - 1, 2**31 - 1, True),
    ):
        cases.append(("huge", _png_declaring(width, height, fix)))
    for signature in (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF89a", b"RIFF\0\0\0\0WEBP"):
        for length in (0, 5, 40, 400):
            cases.append(("junk", signature + rng.bytes(int(length))))
    cases += [("junk", b""), ("junk", b"\0"), ("junk", b"plain text, not an image\n")]
    cases += [("junk", rng.bytes(int(n))) for n in rng.integers(1, 2000, 10)]
    return cases


def through_load_image(cases, work_dir: str) -> dict:
    from rarl_tf.inference import prediction

    counts = {"decoded": 0, "refused": 0, "crashes": 0}
    for index, (category, data) in enumerate(cases):
        path = os.path.join(work_dir, f"input{index}")
        with open(path, "wb") as f:
            f.write(data)
        try:
            prediction.load_image(path)
            counts["decoded"] += 1
            assert category != "huge", f"input {index} ({category}) was not refused"
        except ValueError:
            counts["refused"] += 1
        except AssertionError:
            raise
        except Exception as err:  # noqa: BLE001  (anything but ValueError is a crash)
            counts["crashes"] += 1
            print(
                f"load_image crashed on input {index}: {type(err).__name__}: {err}", file=sys.stderr
            )
    return counts


def through_pipeline(cases) -> dict:
    import tensorflow as tf

    from rarl_tf.data import pipeline

    examples = tf.data.Dataset.from_tensor_slices(
        {
            "image": [data for _, data in cases],
            "labels": np.zeros((len(cases), 1), np.float32),
            "name": [f"input{i}" for i in range(len(cases))],
        }
    )
    counter = pipeline.SkipCounter()
    decoded = [int(ex["name"].numpy()[5:]) for ex in pipeline.decode(examples, counter)]
    huge = [i for i in decoded if cases[i][0] == "huge"]
    assert not huge, f"inputs {huge} over the limit were decoded"
    assert len(decoded) + counter.undecodable == len(cases)
    return {"decoded": len(decoded), "refused": counter.undecodable, "crashes": 0}


def through_serving(cases, model_dir: str, work_dir: str) -> dict:
    import tensorflow as tf

    from rarl_tf.export import saved_model

    signature = tf.saved_model.load(saved_model.export(model_dir, work_dir)).signatures[
        "serving_default"
    ]
    counts = {"decoded": 0, "refused": 0, "crashes": 0}
    for index, (category, data) in enumerate(cases):
        try:
            signature(image_bytes=tf.constant([data]))
            counts["decoded"] += 1
            assert category != "huge", f"input {index} ({category}) was not refused"
        except tf.errors.InvalidArgumentError:
            counts["refused"] += 1
        except AssertionError:
            raise
        except Exception as err:  # noqa: BLE001
            counts["crashes"] += 1
            print(
                f"serving_default crashed on input {index}: {type(err).__name__}: {err}",
                file=sys.stderr,
            )
    return counts


def main(model_dir: str, work_dir: str, seed: int = 0) -> None:
    cases = inputs(seed)
    files = os.path.join(work_dir, "files")
    os.makedirs(files, exist_ok=True)
    results = {
        "inputs": len(cases),
        "categories": {c: sum(1 for k, _ in cases if k == c) for c, _ in cases},
        "load_image": through_load_image(cases, files),
        "pipeline": through_pipeline(cases),
        "serving_default": through_serving(cases, model_dir, os.path.join(work_dir, "serving")),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
