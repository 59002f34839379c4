"""Labels and attended regions for image files.

    python -m rarl_tf.predict --model_dir=runs/digits --output_dir=out IMAGE [IMAGE ...]
    python -m rarl_tf.predict --tflite=rarl.tflite --accelerator=auto --output_dir=out IMAGE ...

--tflite runs the exported model through LiteRT's CompiledModel: --accelerator=cpu (default),
gpu (every op on the GPU; one error line where there is no usable GPU) or auto (the GPU if
there is one, else the CPU with a warning). With gpu or auto the GPU is checked at load: a
fixed probe input runs on the GPU and the CPU, and where they differ beyond the tolerance of
--gpu_precision (fp32: 1e-3, fp16: 1e-2), gpu stops with one line naming the largest
difference and auto warns and runs on the CPU.

Prints one JSON line per image, {"image", "labels": [[name, prob], ...], "scores": {name: prob}},
and writes OUT/<stem>_attention.png with the regions of each iteration drawn in its own colour
(<stem>_attention-2.png, -3, ... where the name is taken: no picture is overwritten).
An unreadable image (or not a regular file), one whose header declares more than --max_pixels
pixels, or a picture that cannot be written prints an error line naming it; the others are
still processed, and the exit status is 1 if any failed.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags

from rarl_tf import cli
from rarl_tf.config import flags as rarl_flags
from rarl_tf.config.experiment import DataConfig, EvalConfig

FLAGS = flags.FLAGS


def _check_settings(paths) -> None:
    """Every setting checked before any model loads or any file is written (the pictures'
    folder is made only after the model has loaded)."""
    if not paths:
        raise ValueError("no images given: python -m rarl_tf.predict --model_dir=DIR IMAGE ...")
    if FLAGS.max_pixels < 1:
        raise ValueError(
            f"--max_pixels={FLAGS.max_pixels} is not allowed: expected an integer "
            f">= 1 (pixels per image)"
        )
    if FLAGS.top_k < 1:
        raise ValueError(f"--top_k={FLAGS.top_k} is not allowed: expected an integer >= 1")
    if not 0.0 <= FLAGS.threshold <= 1.0:
        raise ValueError(
            f"--threshold={FLAGS.threshold} is not allowed: expected a probability in [0, 1]"
        )
    if bool(FLAGS.tflite) == bool(FLAGS.model_dir):
        given = "not both" if FLAGS.tflite else "one of them"
        raise ValueError(f"give --model_dir=DIR (Keras) or --tflite=FILE.tflite (LiteRT), {given}")
    if FLAGS.output_dir:
        from rarl_tf.atomic import check_folder_can_be

        check_folder_can_be(FLAGS.output_dir, f"--output_dir={FLAGS.output_dir}")


def _predictor():
    """(predict_fn, image_size, class names) of --tflite (loaded as the export registry loads
    that target) or --model_dir."""
    from rarl_tf.export.registry import EXPORTERS
    from rarl_tf.inference import prediction
    from rarl_tf.inference.litert import read_exported
    from rarl_tf.inference.outputs import labels_path
    from rarl_tf.model_folder import load_trained

    if FLAGS.tflite:
        image_size, class_names = read_exported(FLAGS.tflite, labels_path(FLAGS.tflite))
        predict_fn = EXPORTERS["tflite"].load(FLAGS.tflite, FLAGS.accelerator, FLAGS.gpu_precision)
        return predict_fn, image_size, class_names
    model, config = load_trained(FLAGS.model_dir)
    predict_fn = lambda images: prediction.keras_predict(model, images)  # noqa: E731
    return predict_fn, config.model.image_size, config.class_names


def main(argv):
    paths = argv[1:]
    _check_settings(paths)
    if FLAGS.tflite:
        # No TensorFlow needed to refuse a foreign model or labels file: at once.
        from rarl_tf.inference.litert import read_exported
        from rarl_tf.inference.outputs import labels_path

        read_exported(FLAGS.tflite, labels_path(FLAGS.tflite))
    from rarl_tf import atomic
    from rarl_tf.inference import prediction

    predict_fn, image_size, class_names = _predictor()
    if FLAGS.output_dir:
        os.makedirs(FLAGS.output_dir, exist_ok=True)
        atomic.check_writable_folder(FLAGS.output_dir, f"--output_dir={FLAGS.output_dir}")
    failed = 0
    for path in paths:
        try:
            record = prediction.predict_file(
                path,
                predict_fn,
                image_size,
                class_names,
                FLAGS.top_k,
                FLAGS.threshold,
                FLAGS.output_dir,
                FLAGS.max_pixels,
            )
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            failed += 1
            continue
        print(json.dumps(record), flush=True)
    if failed:
        print(f"{failed} of {len(paths)} images could not be read", file=sys.stderr)
        sys.exit(1)


def run():
    """Defines this entry point's flags and runs it (`python -m` and the console script)."""
    rarl_flags.define_model_dir_flag(required=False)
    flags.DEFINE_string(
        "tflite",
        None,
        "Run this exported .tflite model through LiteRT instead of the Keras model in --model_dir.",
    )
    flags.DEFINE_enum(
        "accelerator",
        "cpu",
        ["cpu", "gpu", "auto"],
        "With --tflite: run on "
        "the CPU, the GPU (stops with an error if LiteRT finds none), or the GPU "
        "when there is one and the CPU otherwise (with a warning). Both check "
        "the GPU against the CPU on a probe input at load.",
    )
    flags.DEFINE_enum(
        "gpu_precision",
        "fp32",
        ["fp32", "fp16"],
        "With --tflite on the GPU: compute in float32, or in float16 where the device supports it.",
    )
    flags.DEFINE_string(
        "output_dir", None, "Where to write <stem>_attention.png pictures (never overwritten)."
    )
    rarl_flags.define_section_flags(EvalConfig, only=("top_k", "threshold"))
    for name in ("top_k", "threshold"):
        flags.declare_key_flag(name)  # listed by --help, as this entry point's own
    flags.DEFINE_integer(
        "max_pixels",
        DataConfig.max_pixels,
        "Refuse images whose header declares more pixels than this (before decoding them).",
    )
    cli.run_entry_point(main)


if __name__ == "__main__":
    run()
