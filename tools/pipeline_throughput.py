"""Images per second of the training input pipeline alone, next to the model's training speed.

    python -m tools.pipeline_throughput --flagfile=digits.flags --output=throughput.json

Builds the training stream exactly as `rarl_tf.train` does (decode, resize, random crop and
flip, in parallel with tf.data AUTOTUNE and prefetch), reads `--batches` batches after
`--warmup` batches, and prints a table. With --model_steps > 0 it also times that many training
steps of the configured model on batches already in memory, so the two rates can be compared:
the pipeline keeps up when its rate is above the model's.
"""

from __future__ import annotations

import os
import time

from absl import app, flags

from rarl_tf import atomic, cli
from rarl_tf.config import flags as rarl_flags
from rarl_tf.evaluation import tables

FLAGS = flags.FLAGS


def _rate(iterator, count: int, batch_size: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count * batch_size / (time.perf_counter() - start)


def _train_stream(config, examples, pass_size: int, batches: int):
    """The training stream of `batches` batches, built with the settings `rarl_tf.train` uses."""
    from rarl_tf.data import pipeline

    return pipeline.train_stream(
        examples, pipeline.StreamSettings.from_config(config), pass_size, 0, batches
    )


def _pipeline_rate(config, examples, pass_size: int) -> float:
    """Images per second the training stream delivers over `--batches` after `--warmup` batches."""
    import keras

    needed = FLAGS.warmup + FLAGS.batches
    iterator = iter(_train_stream(config, examples, pass_size, needed))
    bar = keras.utils.Progbar(needed, unit_name="batch")
    for _ in range(FLAGS.warmup):
        next(iterator)
        bar.add(1)
    pipeline_rate = _rate(iterator, FLAGS.batches, config.train.batch_size)
    bar.add(FLAGS.batches)
    return pipeline_rate


def _model_rate(config, examples, pass_size: int) -> float:
    """Images per second of `--model_steps` training steps of the configured model, fed one batch
    already in memory so that the input pipeline takes no part in the figure."""
    import keras
    import tensorflow as tf

    from rarl_tf.data.splits import class_names
    from rarl_tf.model.factory import build_model

    m, t = config.model, config.train
    model = build_model(m, len(class_names(config)), seed=t.seed)
    model.compile(optimizer=keras.optimizers.Adam(t.learning_rate), jit_compile=False)
    batch = next(iter(_train_stream(config, examples, pass_size, 1)))
    step = tf.function(model.train_step)
    step(batch)  # trace and warm up
    start = time.perf_counter()
    for _ in range(FLAGS.model_steps):
        logs = step(batch)
    float(logs["loss"])  # wait for the last step
    return FLAGS.model_steps * t.batch_size / (time.perf_counter() - start)


def _rates_table(pipeline_rate: float, result: dict) -> str:
    """The markdown table of the pipeline's rate, and the model's and their ratio when timed."""
    rows = [["input pipeline alone", f"{pipeline_rate:.1f}"]]
    if FLAGS.model_steps:
        rows.append(
            [
                "model training step (data in memory)",
                f"{result['model_train_images_per_second']:.1f}",
            ]
        )
        rows.append(["pipeline / model", f"{result['pipeline_over_model']:.2f}x"])
    return tables.markdown_table(["what", "images / s"], rows)


def main(argv):
    cli.no_arguments(argv)
    config = rarl_flags.experiment_config_from_flags()
    from rarl_tf.data.splits import load_split
    from rarl_tf.training import trainer

    m, t = config.model, config.train
    examples, pass_size = trainer.training_examples(load_split(config, "train", shuffle_files=True))
    pipeline_rate = _pipeline_rate(config, examples, pass_size)
    result = {
        "dataset": config.data.dataset,
        "image_size": m.image_size,
        "batch_size": t.batch_size,
        "cpu_count": os.cpu_count(),
        "pipeline_images_per_second": round(pipeline_rate, 1),
        "batches_timed": FLAGS.batches,
    }

    if FLAGS.model_steps:
        model_rate = _model_rate(config, examples, pass_size)
        result.update(
            model_train_images_per_second=round(model_rate, 1),
            model_steps_timed=FLAGS.model_steps,
            pipeline_over_model=round(pipeline_rate / model_rate, 2),
        )

    print(_rates_table(pipeline_rate, result))
    if FLAGS.output:
        atomic.write_json(FLAGS.output, result)


if __name__ == "__main__":
    rarl_flags.define_experiment_flags()
    flags.DEFINE_integer("batches", 50, "Batches timed after the warm-up.")
    flags.DEFINE_integer("warmup", 10, "Batches read before timing (fills prefetch buffers).")
    flags.DEFINE_integer(
        "model_steps", 10, "Training steps of the model timed for comparison (0: pipeline only)."
    )
    flags.DEFINE_string("output", None, "Write the figures as JSON here.")
    app.run(cli.user_errors_exit(main), flags_parser=cli.parse_flags)
