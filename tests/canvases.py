"""Test canvases of the embedded cluttered_digits dataset, resized as for evaluation."""

import numpy as np
from PIL import Image

from rarl_tf.inference.prediction import model_input


def cluttered_canvases(count: int, image_size: int, seed: int = 0) -> list[np.ndarray]:
    """`count` cluttered_digits test-pool canvases (128 px) resized as for evaluation."""
    return labelled_canvases(count, image_size, seed)[0]


def labelled_canvases(count: int, image_size: int, seed: int = 0):
    """(`cluttered_canvases`, their multi-hot labels [count, 10])."""
    from sklearn.datasets import load_digits

    from rarl_tf.data.cluttered_digits import make_canvas, source_pools

    digits = load_digits()
    glyphs, pool = digits.images / 16.0, source_pools()["test"]
    rng = np.random.default_rng(seed)
    canvases = [make_canvas(rng, glyphs, digits.target, pool, 128) for _ in range(count)]
    images = [model_input(Image.fromarray(c["image"]), image_size) for c in canvases]
    return images, np.stack([c["labels"] for c in canvases])
