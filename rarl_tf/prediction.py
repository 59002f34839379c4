"""Single-image prediction shared by `rarl_tf.predict` and the exporters' checks."""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from rarl_tf import metrics, serving
from rarl_tf.config import DEFAULT_MAX_PIXELS
from rarl_tf.data.pipeline import resize


# What Pillow may open here: the formats TensorFlow's pipeline also reads, and GIF (Pillow decodes
# only its first frame). Fewer formats, fewer decoders a crafted file can reach.
FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "GIF")


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The image at `path` as RGB.

    Raises:
      ValueError: naming the file, if it is missing, not a decodable image, or its header
        declares more than `max_pixels` pixels (checked before any pixel is decoded).
    """
    # Pillow's own bomb check warns above MAX_IMAGE_PIXELS and raises above twice that; aligned
    # with `max_pixels` for this call, so one limit applies (restored after: it is global).
    pillow_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise Image.DecompressionBombError(f"{width} x {height} pixels")
                return image.convert("RGB")
    except FileNotFoundError:
        raise ValueError(f"cannot read image {path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"cannot read image {path}: it is a directory") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"image {path} refused: its header declares more than {max_pixels} "
                         f"pixels (--max_pixels; {err})") from None
    except MemoryError:
        raise ValueError(f"cannot read image {path}: too large to decode in memory") from None
    # Pillow's decoders raise many types for a broken file (OSError, SyntaxError, ValueError,
    # struct.error, ...); whatever it is, the file is not an image this can use.
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"cannot read image {path}: not a decodable {'/'.join(FORMATS)} image "
                         f"({type(err).__name__}: {err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


def model_input(image: Image.Image, image_size: int) -> np.ndarray:
    """[1, N, N, 3] float32 pixels, resized exactly as the evaluation pipeline does."""
    return resize(tf.constant(np.asarray(image)), image_size).numpy()[None]


def keras_predict(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """probs [B, C], boxes [B, T, k, 4] and centres [B, T, 2], normalised to the image
    (`serving.outputs`)."""
    return {name: value.numpy() for name, value in serving.predict(model, images).items()}


def describe(image_name: str, probs: np.ndarray, class_names: Sequence[str], top_k: int,
             threshold: float) -> dict:
    """The JSON record of one image: predicted labels (top-k over the threshold) and scores."""
    chosen = metrics.top_k_predictions(probs[None], top_k, threshold)[0]
    order = np.argsort(-probs, kind="stable")
    labels = [[class_names[c], round(float(probs[c]), 6)] for c in order if chosen[c]]
    return {"image": image_name, "labels": labels,
            "scores": {name: round(float(p), 6) for name, p in zip(class_names, probs)}}


class LiteRTPredictor:
    """Runs an exported .tflite model (see export/tflite.py) through LiteRT's CompiledModel.

    accelerator: "cpu", "gpu" or "auto" (`rarl_tf.litert.compile_model`); `device` is where it
    runs ("cpu" or "gpu").
    """

    def __init__(self, tflite_path: str, labels_path: str, accelerator: str = "cpu"):
        from rarl_tf.litert import CompiledRunner

        for path in (tflite_path, labels_path):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} not found (written by `python -m export.tflite`)")
        self.runner = CompiledRunner(tflite_path, accelerator)
        self.device = self.runner.device
        self.image_size = int(self.runner.input_shape("pixels")[1])
        with open(labels_path) as f:
            self.class_names = [line.strip() for line in f if line.strip()]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Same outputs as `keras_predict` (one image at a time, as the model was exported);
        the exported names are mapped back by `serving.from_exported`."""
        return serving.from_exported(self.runner(pixels=images.astype(np.float32)))
