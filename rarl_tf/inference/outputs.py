"""What a prediction returns, written once for the Keras, SavedModel and TFLite paths.

From one forward pass over the whole image (`FULL_VIEW`):

    probs    [B, C]        class probabilities (softmax of the max-pooled region scores)
    boxes    [B, T, k, 4]  the attended regions (y1, x1, y2, x2), normalised to the image
    centres  [B, T, 2]     the attended locations (y, x), normalised to the image: (l + 1) / 2

Names. Python code (`prediction.keras_predict`, `prediction.LiteRTPredictor`, evaluation) calls
the probabilities `probs`, as the model does. The exported signatures (SavedModel, TFLite) call
them `scores`: those names are a file format that served models and their clients rely on, so
they stay. `EXPORTED_NAMES` is the one mapping; `to_exported` applies it when a signature is
built and `from_exported` when an exported model's outputs are read back.
"""

from __future__ import annotations

import os

# Python name -> the name in exported signatures (SavedModel and TFLite outputs).
EXPORTED_NAMES = {"probs": "scores", "boxes": "boxes", "centres": "centres"}


def centres(locations):
    """Locations in the whole view's [-1, 1] frame -> points (y, x) normalised to the image."""
    return (locations + 1.0) / 2.0


def from_model(model_outputs: dict) -> dict:
    """A model's outputs for one view (`model(images, views=FULL_VIEW)`) -> {"probs" [B, C],
    "boxes" [B, T, k, 4], "centres" [B, T, 2]} (tensors)."""
    return {
        "probs": model_outputs["probs"],
        "boxes": model_outputs["boxes"][:, 0],
        "centres": centres(model_outputs["locations"][:, 0]),
    }


def run_model(model, images) -> dict:
    """`from_model` of the model run on images [B, N, N, 3], whole view, policy mean (no
    sampling)."""
    from rarl_tf.model.views import FULL_VIEW

    return from_model(model(images, training=False, views=FULL_VIEW))


def to_exported(named: dict) -> dict:
    """Python names -> the exported signature's names (probs -> scores); others unchanged."""
    return {EXPORTED_NAMES.get(name, name): value for name, value in named.items()}


def from_exported(named: dict) -> dict:
    """An exported model's outputs -> Python names (scores -> probs); others unchanged."""
    python_names = {exported: name for name, exported in EXPORTED_NAMES.items()}
    return {python_names.get(name, name): value for name, value in named.items()}


def labels_path(tflite_path: str) -> str:
    """FILE.tflite -> FILE.labels.txt, the class names written beside an exported TFLite model."""
    return os.path.splitext(tflite_path)[0] + ".labels.txt"
