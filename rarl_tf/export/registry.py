"""The export targets, registered here and nowhere else: what each one is called, what it
writes, how it is written and, where Python can run the result, how it is loaded.

`EXPORTERS` is what the rest enumerates: `rarl_tf.predict` loads --tflite through it,
`tools.export_accuracy` exports and scores every target that Python can run, and the console
scripts (`Exporter.script`, pyproject.toml's [project.scripts], kept equal by
tests/test_packaging.py) and the checkout's `python -m export.NAME` shortcuts are one per
target. A new target is its module under rarl_tf/export/ (a `run()` entry point) plus one
`Exporter` here.

Light to import (no TensorFlow): each function imports what it needs when it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

# Pixels [B, N, N, 3] float32 in [0, 255] -> {"probs" [B, C], "boxes" [B, T, k, 4], ...}, the
# names and shapes of `prediction.keras_predict` (a SavedModel answers no "centres", but its
# top-k classes).
PredictFn = Callable[[np.ndarray], dict]


@dataclasses.dataclass(frozen=True)
class Exporter:
    """One export target.

    name: the registry's key, and the command's (`rarl-export-NAME`, `python -m export.NAME`).
    module: its entry module, whose `run()` defines its flags and runs it.
    suffix: the end of the path it writes (".tflite"); "" where that path is a folder.
    write: (model_dir, output, quantization, calibration_images) -> the path of what it
      wrote, overwriting where the target allows it (the SavedModel adds a version instead).
    quantizations: the --quantization values it takes ("none": float32 weights).
    load: (path, **options) -> a `PredictFn` running what `write` wrote; None where it runs
      outside Python (the web page runs in a browser).
    """

    name: str
    module: str
    suffix: str
    write: Callable[[str, str, str, int], str]
    quantizations: tuple[str, ...] = ("none",)
    load: Callable[..., PredictFn] | None = None

    @property
    def script(self) -> str:
        """Its console script: rarl-export-saved-model for saved_model."""
        return "rarl-export-" + self.name.replace("_", "-")


def _write_saved_model(model_dir: str, output: str, quantization: str, calibration: int) -> str:
    from rarl_tf.export import saved_model

    return saved_model.export(model_dir, output)


def _load_saved_model(path: str) -> PredictFn:
    """The version folder's `predict_pixels` (uint8 pixels; it resizes them itself, so N x N
    pixels pass unchanged but for the rounding)."""
    import tensorflow as tf

    from rarl_tf.inference import outputs

    signature = tf.saved_model.load(path).signatures["predict_pixels"]

    def predict(images: np.ndarray) -> dict:
        pixels = tf.cast(tf.round(images), tf.uint8)
        return {k: v.numpy() for k, v in outputs.from_exported(signature(pixels=pixels)).items()}

    return predict


def _write_tflite(model_dir: str, output: str, quantization: str, calibration: int) -> str:
    from rarl_tf.export import tflite

    tflite.export(model_dir, output, quantization, calibration, overwrite=True)
    return output


def _load_tflite(path: str, accelerator: str = "cpu", precision: str = "fp32") -> PredictFn:
    """LiteRT's CompiledModel on the file and its labels file; the model takes one image, so
    a batch runs image by image."""
    from rarl_tf.inference import outputs, prediction

    run = prediction.LiteRTPredictor(path, outputs.labels_path(path), accelerator, precision)

    def predict(images: np.ndarray) -> dict:
        each = [run(np.asarray(image)[None]) for image in images]
        return {name: np.concatenate([out[name] for out in each]) for name in each[0]}

    return predict


def _write_web(model_dir: str, output: str, quantization: str, calibration: int) -> str:
    from rarl_tf.export import web

    web.export(model_dir, output, quantization, calibration_images=calibration, overwrite=True)
    return output


EXPORTERS: dict[str, Exporter] = {
    exporter.name: exporter
    for exporter in (
        Exporter(
            "saved_model", "rarl_tf.export.saved_model", "", _write_saved_model, ("none",),
            _load_saved_model,
        ),
        Exporter(
            "tflite", "rarl_tf.export.tflite", ".tflite", _write_tflite,
            ("none", "float16", "int8"), _load_tflite,
        ),
        Exporter("web", "rarl_tf.export.web", "", _write_web, ("none", "float16", "int8")),
    )
}  # fmt: skip
