"""Single-image prediction shared by `rarl_tf.predict` and the exporters' checks."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from rarl_tf.config.experiment import DEFAULT_MAX_PIXELS
from rarl_tf.data import image_file, image_header
from rarl_tf.data.pipeline import resize
from rarl_tf.evaluation import metrics
from rarl_tf.inference import outputs


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The image at `path` as RGB, decoded exactly as the training and evaluation pipelines and
    the SavedModel decode it (`image_header.decode`, TensorFlow's decoders): a 16-bit PNG is
    scaled to 8 bits, a palette expanded, an alpha channel dropped and a CMYK JPEG converted
    the same way everywhere, so a file scores the same through every path.

    Raises:
      ValueError: naming the file, if it is missing, not a regular file (a FIFO, a device: it
        is not opened for reading, so it cannot block), not a JPEG, PNG, BMP or still WebP
        image, or its header declares more than `max_pixels` pixels (checked before any pixel
        is decoded).
    """
    data = image_file.read_bytes(path)
    try:
        height, width = (int(v) for v in image_header.header_shape(tf.constant(data)))
    except tf.errors.OpError:
        height = width = -1  # a JPEG whose header TensorFlow cannot parse
    if height <= 0 or width <= 0:
        raise ValueError(f"cannot read image {path}: not a decodable {image_header.FORMATS} image")
    if height * width > max_pixels:
        raise ValueError(
            f"image {path} refused: its header declares more than {max_pixels} "
            f"pixels (--max_pixels; {width} x {height} pixels)"
        )
    try:
        pixels = image_header.decode(tf.constant(data), max_pixels).numpy()
    except tf.errors.OpError as err:
        reason = (err.message or "").splitlines()[0][:200]
        raise ValueError(
            f"cannot read image {path}: not a decodable {image_header.FORMATS} image ({reason})"
        ) from None
    except MemoryError:
        raise ValueError(f"cannot read image {path}: too large to decode in memory") from None
    return Image.fromarray(pixels)


def model_input(image: Image.Image, image_size: int) -> np.ndarray:
    """[1, N, N, 3] float32 pixels, resized exactly as the evaluation pipeline does."""
    return resize(tf.constant(np.asarray(image)), image_size).numpy()[None]


def keras_predict(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """probs [B, C], boxes [B, T, k, 4] and centres [B, T, 2], normalised to the image
    (`outputs.from_model`)."""
    return {name: value.numpy() for name, value in outputs.run_model(model, images).items()}


def describe(
    image_name: str, probs: np.ndarray, class_names: Sequence[str], top_k: int, threshold: float
) -> dict:
    """The JSON record of one image: predicted labels (top-k over the threshold) and scores."""
    chosen = metrics.top_k_predictions(probs[None], top_k, threshold)[0]
    order = np.argsort(-probs, kind="stable")
    labels = [[class_names[c], round(float(probs[c]), 6)] for c in order if chosen[c]]
    return {
        "image": image_name,
        "labels": labels,
        "scores": {name: round(float(p), 6) for name, p in zip(class_names, probs)},
    }


class LiteRTPredictor:
    """Runs an exported .tflite model (see rarl_tf/export/tflite.py) through LiteRT's CompiledModel.

    accelerator: "cpu", "gpu" or "auto", precision: "fp32" or "fp16" on the GPU
    (`rarl_tf.inference.litert.compile_model`); `device` is where it runs ("cpu" or "gpu").
    """

    def __init__(
        self, tflite_path: str, labels_path: str, accelerator: str = "cpu", precision: str = "fp32"
    ):
        from rarl_tf.inference.litert import CompiledRunner, read_exported

        # The file's signature and labels first: a foreign or truncated .tflite, or another
        # model's labels, is named here instead of failing inside LiteRT or `describe`.
        self.image_size, self.class_names = read_exported(tflite_path, labels_path)
        self.runner = CompiledRunner(tflite_path, accelerator, precision=precision)
        self.device = self.runner.device

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Same outputs as `keras_predict` (one image at a time, as the model was exported);
        the exported names are mapped back by `outputs.from_exported`."""
        return outputs.from_exported(self.runner(pixels=images.astype(np.float32)))


def save_picture(picture: Image.Image, output_dir: str, image_path: str) -> str:
    """Writes `picture` as OUT/<stem>_attention.png, or <stem>_attention-2.png, -3, ... where
    that name is taken (by an earlier picture of this run, `a/x.png b/x.png`, or a file already
    there): no picture is overwritten. Written whole (`atomic.save_image`); returns the path.
    """
    from rarl_tf import atomic

    stem = os.path.splitext(os.path.basename(image_path))[0]
    for number in range(1, 1_000_000):
        name = f"{stem}_attention.png" if number == 1 else f"{stem}_attention-{number}.png"
        path = os.path.join(output_dir, name)
        if os.path.lexists(path):
            continue
        try:
            atomic.save_image(picture, path, overwrite=False)
        except FileExistsError:
            continue  # taken between the check and the write (another predict)
        return path
    raise ValueError(f"no free name for the picture of {image_path} in {output_dir}")


def predict_file(
    path: str,
    predict_fn,
    image_size: int,
    class_names: Sequence[str],
    top_k: int,
    threshold: float,
    output_dir: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict:
    """The JSON record of the image file `path`; with `output_dir`, its attention picture too
    (`visualize.draw_attention`, capped at `visualize.MAX_SIDE` px), named in the record.

    Raises:
      ValueError: the image cannot be read (`load_image`), or its picture cannot be drawn or
        written (named); the caller goes on with the next image.
    """
    from rarl_tf.inference import visualize

    image = load_image(path, max_pixels)
    out = predict_fn(model_input(image, image_size))
    record = describe(path, out["probs"][0], class_names, top_k, threshold)
    if output_dir:
        try:
            picture = visualize.draw_attention(image, out["boxes"][0], out["centres"][0])
            record["attention_image"] = save_picture(picture, output_dir, path)
        except (OSError, MemoryError, ValueError) as err:
            raise ValueError(
                f"cannot write the attention picture of {path} to {output_dir} "
                f"({type(err).__name__}: {err})"
            ) from None
    return record
