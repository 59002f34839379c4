"""Writes a model's dataset images, resized as for evaluation, to one .npy for tools/gpu_check.py.

    python -m tools.split_images --model_dir=runs/digits --split=eval --count=500 \
        --output=/tmp/test_canvases.npy

The array is float32 [count, N, N, 3] (RGB in [0, 255], the exported model's input), taken in
the split's order from the dataset of the model's configuration ("eval": the split
evaluation reads, the test split of cluttered_digits); gpu_check.py needs no
TensorFlow to read it.
"""

from __future__ import annotations

import io

import numpy as np
from absl import app, flags

from rarl_tf import atomic, cli
from rarl_tf.config import flags as rarl_flags

FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    if FLAGS.count < 1:
        raise ValueError(f"--count={FLAGS.count} is not allowed: expected an integer >= 1")
    from rarl_tf.export.tflite import training_images

    images = np.concatenate(list(training_images(FLAGS.model_dir, FLAGS.count, FLAGS.split)))
    buffer = io.BytesIO()
    np.save(buffer, images.astype(np.float32))
    atomic.write_bytes(FLAGS.output, buffer.getvalue())
    print(f"{len(images)} {FLAGS.split} images {list(images.shape[1:])} written to {FLAGS.output}")


if __name__ == "__main__":
    rarl_flags.define_model_dir_flag()
    flags.DEFINE_enum(
        "split",
        "eval",
        ["train", "eval"],
        "The dataset split to read: the "
        "training split or the evaluation one (cluttered_digits: test).",
    )
    flags.DEFINE_integer("count", 500, "How many images (the first of the split).")
    flags.DEFINE_string("output", None, "Where to write the .npy file.", required=True)
    app.run(cli.user_errors_exit(main), flags_parser=cli.parse_flags)
