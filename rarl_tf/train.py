"""Train RARL, then evaluate it on the evaluation split.

    python -m rarl_tf.train --flagfile=digits.flags --model_dir=runs/digits
    python -m rarl_tf.train --flagfile=voc.flags --strategy=mirrored --model_dir=runs/voc512

Writes MODEL_DIR/metrics.json (mAP, CP, CR, CF1, OP, OR, OF1, views, num_images, per-class AP,
steps). Rerunning the same command resumes from the last checkpoint, mid-epoch included.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

from rarl_tf import atomic, cli, model_folder
from rarl_tf.config import flags as rarl_flags
from rarl_tf.config.experiment import STRATEGIES, ExperimentConfig

FLAGS = flags.FLAGS


def train_and_evaluate(config: ExperimentConfig, model_dir: str, strategy) -> dict | None:
    """Trains (or resumes) `config` in `model_dir`, then on the chief scores the evaluation split
    and writes metrics.json; returns the results (None on the other workers). Each split is
    loaded once: training, its attention pictures and the scoring share `Splits`."""
    from rarl_tf.data.splits import Splits
    from rarl_tf.evaluation import scoring
    from rarl_tf.training import callbacks, checkpoints, distribute, trainer

    start = time.time()
    splits = Splits(config)
    try:
        model, config = trainer.train(config, model_dir, strategy, splits=splits)
    except (model_folder.ModelDirBusy, checkpoints.CheckpointWriteFailed) as err:
        raise cli.RunFailed(str(err)) from None
    if not distribute.is_chief():
        return None
    results = scoring.evaluate(model, config, splits.eval)
    results["steps"] = callbacks.global_step(model)
    results["train_and_eval_seconds"] = round(time.time() - start, 1)
    # Whole or not at all: a reader never sees half of it (train.py still holds the lock).
    atomic.write_json(os.path.join(model_dir, model_folder.METRICS_FILE), results)
    return results


def main(argv):
    cli.no_arguments(argv)
    config = rarl_flags.experiment_config_from_flags()
    model_dir = FLAGS.model_dir
    atomic.check_folder_can_be(model_dir, f"--model_dir={model_dir}")
    if FLAGS.num_cpu_devices < 1:
        raise ValueError(
            f"--num_cpu_devices={FLAGS.num_cpu_devices} is not allowed: expected an integer >= 1"
        )

    # Imported after the flags are checked so a bad flag fails before TensorFlow starts.
    from rarl_tf.training import distribute

    distribute.split_cpu(FLAGS.num_cpu_devices)
    strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices, FLAGS.tpu)
    replicas = strategy.num_replicas_in_sync
    if config.train.batch_size % replicas:
        raise ValueError(
            f"--batch_size={config.train.batch_size} is not allowed: expected a "
            f"multiple of the {replicas} replicas of --strategy={FLAGS.strategy}"
        )
    results = train_and_evaluate(config, model_dir, strategy)
    if results is not None:
        print(json.dumps({k: v for k, v in results.items() if k != "per_class_ap"}))


def run():
    """Defines this entry point's flags and runs it (`python -m` and the console script)."""
    rarl_flags.define_model_dir_flag()
    rarl_flags.define_experiment_flags()
    flags.DEFINE_enum(
        "strategy",
        "default",
        list(STRATEGIES),
        "tf.distribute strategy: one device, all local GPUs, the machines in TF_CONFIG, or a TPU.",
    )
    flags.DEFINE_integer(
        "num_cpu_devices",
        1,
        "Split the CPU into this many logical devices (to try --strategy=mirrored without GPUs).",
    )
    flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu ('' = local).")
    cli.run_entry_point(main)


if __name__ == "__main__":
    run()
