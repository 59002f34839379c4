"""Single-image prediction shared by `rarl_tf.predict` and the exporters' checks."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from rarl_tf import metrics
from rarl_tf.data.pipeline import resize
from rarl_tf.model.views import FULL_VIEW


def load_image(path: str) -> Image.Image:
    """The image at `path` as RGB; ValueError naming the file if it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise ValueError(f"cannot read image {path}: no such file") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: not a decodable image ({err})") from None


def model_input(image: Image.Image, image_size: int) -> np.ndarray:
    """[1, N, N, 3] float32 pixels, resized exactly as the evaluation pipeline does."""
    return resize(tf.constant(np.asarray(image)), image_size).numpy()[None]


def keras_predict(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """probs [B, C], boxes [B, T, k, 4] and centres [B, T, 2], normalised to the image."""
    out = model(images, training=False, views=FULL_VIEW)
    locations = out["locations"][:, 0].numpy()
    return {"probs": out["probs"].numpy(), "boxes": out["boxes"][:, 0].numpy(),
            "centres": (locations + 1.0) / 2.0}


def describe(image_name: str, probs: np.ndarray, class_names: Sequence[str], top_k: int,
             threshold: float) -> dict:
    """The JSON record of one image: predicted labels (top-k over the threshold) and scores."""
    chosen = metrics.top_k_predictions(probs[None], top_k, threshold)[0]
    order = np.argsort(-probs, kind="stable")
    labels = [[class_names[c], round(float(probs[c]), 6)] for c in order if chosen[c]]
    return {"image": image_name, "labels": labels,
            "scores": {name: round(float(p), 6) for name, p in zip(class_names, probs)}}


class LiteRTPredictor:
    """Runs an exported .tflite model (see export/tflite.py) through the LiteRT interpreter."""

    def __init__(self, tflite_path: str, labels_path: str):
        from ai_edge_litert.interpreter import Interpreter

        for path in (tflite_path, labels_path):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} not found (written by `python -m export.tflite`)")
        interpreter = Interpreter(model_path=tflite_path)
        self.runner = interpreter.get_signature_runner("serving_default")
        self.image_size = int(self.runner.get_input_details()["pixels"]["shape"][1])
        with open(labels_path) as f:
            self.class_names = [line.strip() for line in f if line.strip()]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Same outputs as `keras_predict` (one image at a time, as the model was exported)."""
        out = self.runner(pixels=images.astype(np.float32))
        return {"probs": out["scores"], "boxes": out["boxes"], "centres": out["centres"]}
