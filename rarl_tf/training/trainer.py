"""Training: data, model, optimizer and callbacks (`callbacks.py`) for one `ExperimentConfig`,
resumable.

Everything a run writes lives under `model_dir` (only the chief writes under multi-worker):

    config.json           the frozen config (evaluation, prediction and export rebuild from it)
    data_stats.json       images per training pass, and how many were skipped for having no label
    checkpoints/          tf.train checkpoints (model and optimizer, whose `iterations` is the
                          global step) every `checkpoint_every_steps` steps and at each epoch end
    logs/                 TensorBoard
    history.csv           one row per epoch
    model.weights.h5      the final weights

A run killed at any moment and started again with the same flags continues from its newest
checkpoint: same step, same learning rate, and the data stream resumes at that step's position
(`pipeline.train_stream`), so the run ends after exactly `epochs x steps_per_epoch` steps.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from rarl_tf import atomic, cli, model_folder
from rarl_tf.config.experiment import ExperimentConfig
from rarl_tf.data import pipeline
from rarl_tf.data.splits import Splits, class_names
from rarl_tf.model import optimizer as optimizer_lib
from rarl_tf.model.factory import build_model
from rarl_tf.training import distribute, loop, signals
from rarl_tf.training.callbacks import (
    AttentionPictures,
    SkippedImages,
    StepCheckpoint,
    anneal_callbacks,
)


class TrainingDiverged(cli.RunFailed):
    """The loss became NaN or infinite; the last good checkpoint was kept (a `cli.RunFailed`:
    the entry point prints it and exits with 1)."""


class TrainingIncomplete(cli.RunFailed):
    """The run made fewer steps than configured (its data ran out); no final model files were
    written (a `cli.RunFailed`: exit 1)."""


def attention_sample(
    config: ExperimentConfig, examples: tf.data.Dataset, count: int = 4
) -> np.ndarray:
    """The first `count` images of the evaluation split `examples` that decode, resized to
    N x N: [n <= count, N, N, 3] float32."""
    # The first `count` that decode (lazily: only as many are read as needed); an image that
    # does not decode must not end the run. None decode: no pictures.
    batch = next(iter(pipeline.eval_batches(examples, config.model.image_size, count)), None)
    if batch is None:
        size = config.model.image_size
        return np.zeros((0, size, size, 3), np.float32)
    return batch[0].numpy()


def learning_rate(config: ExperimentConfig, steps_per_epoch: int):
    """The configured schedule: constant, or linear warm-up then cosine decay to 0."""
    t = config.train
    if t.lr_schedule == "constant":
        return t.learning_rate
    total = t.epochs * steps_per_epoch
    warmup = int(t.warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else t.learning_rate,
        decay_steps=total - warmup,
        warmup_target=t.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def prepare_model_dir(config: ExperimentConfig, model_dir: str, write: bool = True) -> None:
    """Writes config.json, or checks that a resumed run asks for the same experiment."""
    model_folder.check_resumes(config, model_dir)
    if write:
        model_folder.save_config(config, model_dir)


def count_labeled(
    examples: tf.data.Dataset, cache_dir: str | None = None, write: bool = True
) -> tuple[int, int]:
    """(images with at least one label, images without) in `examples`.

    Counting reads the split once (labels only, images stay encoded); with `cache_dir` the
    counts are kept in `cache_dir/data_stats.json`, so a resumed run reads them instead.
    """
    path = os.path.join(cache_dir, model_folder.DATA_STATS_FILE) if cache_dir else None
    if path and os.path.exists(path):
        try:
            with open(path, "rb") as f:
                stats = json.loads(f.read())
            return int(stats["labeled"]), int(stats["unlabeled"])
        except (ValueError, TypeError, KeyError):
            # Only a cache: counting again is cheap and exact.
            print(f"warning: {path} is unreadable; counting the training split again", flush=True)
    flags = examples.map(pipeline.is_labeled, num_parallel_calls=pipeline.AUTOTUNE)
    labeled, total = flags.reduce(
        (np.int64(0), np.int64(0)), lambda acc, ok: (acc[0] + tf.cast(ok, tf.int64), acc[1] + 1)
    )
    labeled, total = int(labeled), int(total)
    if path and write:
        atomic.write_json(path, {"labeled": labeled, "unlabeled": total - labeled}, None)
    return labeled, total - labeled


def training_examples(
    examples: tf.data.Dataset, cache_dir: str | None = None, write: bool = True
) -> tuple[tf.data.Dataset, int]:
    """The labeled examples (encoded) of the training split `examples` (as `train` loads it:
    `Splits.train`) and their number per pass.

    Images without any label are left out of training (they carry no signal for the hybrid
    loss and would divide by zero in eq. 9); how many is printed once.
    """
    pass_size, unlabeled = count_labeled(examples, cache_dir, write)
    if unlabeled:
        print(
            f"Skipping {unlabeled} training images that have no label ({pass_size} used per pass)",
            flush=True,
        )
    return examples.filter(pipeline.is_labeled), pass_size


def steps_per_epoch_of(config: ExperimentConfig, pass_size: int) -> int:
    """--steps_per_epoch, or one pass of `pass_size` images; ValueError if under one batch."""
    t = config.train
    steps_per_epoch = t.steps_per_epoch or pass_size // t.batch_size
    if steps_per_epoch <= 0:
        raise ValueError(
            f"the training split of {config.data.dataset} has {pass_size} usable "
            f"images, fewer than one batch (--batch_size={t.batch_size})"
        )
    return steps_per_epoch


def compiled_model(
    config: ExperimentConfig,
    strategy: tf.distribute.Strategy,
    steps_per_epoch: int,
    num_classes: int,
) -> keras.Model:
    """The configured model with its Adam optimizer (`optimizer.adam`), seeded and built under
    `strategy`."""
    m, t = config.model, config.train
    keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        # Every op then reduces in a fixed order (or raises where it has no such kernel); the
        # samplers are seeded already (the data order, augmentation, init and the agent's
        # location sampler all take --seed).
        tf.config.experimental.enable_op_determinism()
    with strategy.scope():
        # crop_and_resize has no XLA kernel: an XLA step crops with matrix products instead.
        model = build_model(
            m, num_classes, seed=t.seed, crop_mode="matmul" if t.jit_compile else "crop_and_resize"
        )
        optimizer = optimizer_lib.adam(t, learning_rate(config, steps_per_epoch))
        model.compile(optimizer=optimizer, jit_compile=t.jit_compile)
    return model


def chief_callbacks(
    config: ExperimentConfig, model_dir: str, resumed: bool, splits: Splits
) -> list[keras.callbacks.Callback]:
    """What only the chief writes: TensorBoard logs, history.csv (appended to when `resumed`)
    and, for RARL, the attention pictures (of `splits.eval`'s first images)."""
    callbacks = [
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
        keras.callbacks.CSVLogger(
            os.path.join(model_dir, model_folder.HISTORY_FILE), append=resumed
        ),
    ]
    sample = attention_sample(config, splits.eval) if config.model.architecture == "rarl" else []
    if len(sample):
        callbacks.append(AttentionPictures(os.path.join(model_dir, "logs", "attention"), sample))
    return callbacks


def check_complete(
    reached: int, start: int, total_steps: int, counter: pipeline.SkipCounter, kept: str | None
) -> None:
    """Raises TrainingIncomplete unless the run reached `total_steps`: a model trained on fewer
    steps than asked for must not look finished (no final files are written after this)."""
    if reached >= total_steps:
        return
    raise TrainingIncomplete(
        f"training made {reached - start} of its {total_steps - start} remaining steps (global "
        f"step {reached} of {total_steps}): the training data ran out, {counter.undecodable} "
        f"images could not be decoded or were over --max_pixels (see the warnings naming "
        f"them). No model.weights.h5 / model.keras was written; the checkpoint "
        f"{kept or '(none)'} is kept. Remove or fix those images (or lower --steps_per_epoch) "
        f"and rerun the same command"
    )


def run_callbacks(
    model: keras.Model,
    config: ExperimentConfig,
    model_dir: str,
    checkpoint: StepCheckpoint,
    counter: pipeline.SkipCounter,
    steps_per_epoch: int,
    step: int,
    splits: Splits,
) -> list:
    """The Keras callbacks of a run resumed at `step`: checkpoints, skipped-image counts, the
    inhibition's annealing, and on the chief the logs, history and attention pictures."""
    callbacks = [
        checkpoint,
        SkippedImages(counter),
        *anneal_callbacks(model, config, steps_per_epoch),
    ]
    if distribute.is_chief():
        callbacks += chief_callbacks(config, model_dir, step > 0, splits)
    return callbacks


def diverged(err: Exception, latest_checkpoint: str | None) -> TrainingDiverged:
    """The error of a run whose loss went non-finite, naming the checkpoint it keeps."""
    return TrainingDiverged(
        f"{err}; training stopped and kept the last good checkpoint "
        f"{latest_checkpoint} (lower --learning_rate, or check the "
        f"data; rerunning resumes from that checkpoint)"
    )


def _train_remaining(model, strategy, stream, steps: tuple, callbacks: list, verbose: int) -> int:
    """`loop.train_steps` from steps = (start, total, per epoch) with `callbacks` (the first a
    StepCheckpoint); returns the step reached. Raises TrainingDiverged on a non-finite loss,
    and signals.TrainingInterrupted, after saving a checkpoint, if SIGINT or SIGTERM stopped
    it."""
    start, total_steps, steps_per_epoch = steps
    checkpoint, stopper = callbacks[0], signals.StopOnSignal()
    try:
        reached = loop.train_steps(
            model,
            strategy,
            stream,
            start,
            total_steps,
            steps_per_epoch,
            [stopper, *callbacks],
            verbose,
        )
    except loop.NonFiniteStep as err:
        raise diverged(err, checkpoint.manager.latest_checkpoint) from None
    finally:
        stopper.on_train_end()  # whatever stopped the loop, the handlers go back
    if stopper.received and reached < total_steps:
        checkpoint.save_now()
        kept = checkpoint.manager.latest_checkpoint
        raise signals.interrupted(stopper.received, reached, total_steps, kept)
    return reached


def restored(
    model: keras.Model, config: ExperimentConfig, model_dir: str, strategy: tf.distribute.Strategy
) -> tuple[StepCheckpoint, int]:
    """`model` restored from this worker's latest checkpoint in `model_dir`, if any: (its
    StepCheckpoint, the global step reached, 0 for a new run)."""
    checkpoint = StepCheckpoint(
        os.path.join(distribute.worker_dir(model_dir), model_folder.CHECKPOINT_DIR),
        os.path.join(model_dir, model_folder.CHECKPOINT_DIR),
        config.train.checkpoint_every_steps,
    )
    with strategy.scope():
        step = checkpoint.attach(model)
    # Every worker must start from the same step, or their collectives stop pairing up.
    distribute.check_same_step(strategy, step)
    return checkpoint, step


def train(
    config: ExperimentConfig,
    model_dir: str,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int = 1,
    splits: Splits | None = None,
) -> tuple[keras.Model, ExperimentConfig]:
    """Trains (or resumes) the experiment in `model_dir` and writes its final weights.

    Args:
      strategy: a tf.distribute strategy (`distribute.make_strategy`); default one device.
      splits: `Splits(config)` when the caller reads a split too (the evaluation after
        training), so that each is loaded once; default: the splits are loaded here.

    Returns:
      The model and the config as saved (with the dataset's class names).

    Raises:
      TrainingDiverged: the loss became NaN or infinite (the last good checkpoint is kept).
      TrainingIncomplete: the data ran out before the configured steps (nothing final written).
      model_folder.ModelDirBusy: another process is training in `model_dir`. This process keeps
        the folder's lock until it ends (`model_folder.release` gives it up earlier).
    """
    strategy = strategy or tf.distribute.get_strategy()
    config = dataclasses.replace(config, class_names=class_names(config))
    chief = distribute.is_chief()
    splits = splits or Splits(config)
    # Data first: a dataset that is missing stops the run before anything is written.
    train_split = splits.train
    os.makedirs(model_dir, exist_ok=True)
    # One run per folder, before anything is written; each worker locks the folder it writes.
    model_folder.acquire(distribute.worker_dir(model_dir))
    prepare_model_dir(config, model_dir, write=chief)
    examples, pass_size = training_examples(train_split, model_dir, write=chief)
    steps_per_epoch = steps_per_epoch_of(config, pass_size)
    total_steps = config.train.epochs * steps_per_epoch
    model = compiled_model(config, strategy, steps_per_epoch, len(config.class_names))

    checkpoint, step = restored(model, config, model_dir, strategy)
    counter = pipeline.SkipCounter()
    callbacks = run_callbacks(
        model, config, model_dir, checkpoint, counter, steps_per_epoch, step, splits
    )
    if step < total_steps:
        settings = pipeline.StreamSettings.from_config(config)
        stream = pipeline.train_stream(examples, settings, pass_size, step, total_steps, counter)
        reached = _train_remaining(
            model, strategy, stream, (step, total_steps, steps_per_epoch), callbacks, verbose
        )
        check_complete(reached, step, total_steps, counter, checkpoint.manager.latest_checkpoint)
    if chief:
        model_folder.save_weights(model, os.path.join(model_dir, model_folder.WEIGHTS_FILE))
        model_folder.save_keras(model, os.path.join(model_dir, model_folder.KERAS_FILE))
    return model, config
