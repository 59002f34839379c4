"""The training loop: `model.train_step` under any tf.distribute strategy, driving Keras callbacks.

Keras 3's `Model.fit` does not run under MultiWorkerMirroredStrategy (in keras 3.15 both its
symbolic build and its reduction of the step's logs call cross-worker reduces that fail on one
worker's values), so one small loop serves every strategy instead:

    global step s in [start_step, total_steps):
        batch  = next(distributed stream)            each replica gets B / replicas images
        logs   = strategy.run(model.train_step)      losses already divided by the global B
        logs   = mean over replicas                  the step's metrics, identical on all workers

Epochs are `steps_per_epoch` consecutive steps, so a run resumed at step s starts inside
epoch s // steps_per_epoch and ends at the same step an uninterrupted run would.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


class NonFiniteStep(RuntimeError):
    """Training step `step` (1-based global step) produced a NaN or infinite value."""

    def __init__(self, step: int, what: str):
        super().__init__(f"{what} became NaN or infinite at step {step}")
        self.step = step


def _callback_list(
    model: keras.Model,
    callbacks: list[keras.callbacks.Callback],
    total_steps: int,
    steps_per_epoch: int,
    verbose: int,
) -> keras.callbacks.CallbackList:
    """The callbacks as `fit` would drive them (a progress bar per epoch when verbose)."""
    return keras.callbacks.CallbackList(
        callbacks,
        add_history=False,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=-(-total_steps // steps_per_epoch),
        steps=steps_per_epoch,
    )


def _distributed_step(model: keras.Model, strategy: tf.distribute.Strategy):
    """tf.function global batch -> {metric: value averaged over the replicas}."""
    if not model.optimizer.built:
        # Slot variables must be created under the strategy, not inside the traced step.
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)

    # XLA compiles the per-replica step (not the cross-replica reduction around it). No
    # AutoGraph (docs/design.md): the step has no Python control flow on tensors.
    replica_step = (
        tf.function(model.train_step, jit_compile=True, autograph=False)
        if model.jit_compile
        else model.train_step
    )

    @tf.function(autograph=False)
    def step_fn(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        return {
            name: strategy.reduce("MEAN", value, axis=None) for name, value in per_replica.items()
        }

    return step_fn


def _distributed_batches(strategy: tf.distribute.Strategy, stream: tf.data.Dataset):
    """An iterator over `stream`'s global batches, each split among the replicas."""
    # DATA sharding: every worker reads the whole stream and keeps its share of each global
    # batch. File sharding would give workers different files, and the stream is addressed
    # by step (for exact resume), not by file.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return iter(strategy.experimental_distribute_dataset(stream.with_options(options)))


def _step_logs(step_fn, batch) -> dict[str, float]:
    """One step's logs as floats; a step refused for non-finite boxes logs a NaN loss."""
    try:
        return {name: float(value) for name, value in step_fn(batch).items()}
    except tf.errors.InvalidArgumentError as err:
        # NaN weights give NaN locations, which crop_and_resize refuses before any loss.
        if "not finite" not in err.message:
            raise
        return {"loss": math.nan}


def train_steps(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    stream: tf.data.Dataset,
    start_step: int,
    total_steps: int,
    steps_per_epoch: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int = 1,
) -> int:
    """Runs training steps `start_step` .. `total_steps - 1`; returns the step it stopped at.

    Args:
      model: a compiled Keras model built under `strategy.scope()`.
      stream: global batches for exactly those steps (`pipeline.train_stream`).
      callbacks: Keras callbacks; they see `on_epoch_*` / `on_train_batch_*` as under `fit`
        (batch indices count within the epoch), and may set `model.stop_training`.
      verbose: 1 shows a Keras progress bar per epoch.

    Returns:
      The global step after the last step run: `total_steps`, or less if a callback stopped
      training or the stream ran out.

    Raises:
      NonFiniteStep: a step's loss or metrics were NaN or infinite (no callback sees it).
    """
    callback_list = _callback_list(model, callbacks, total_steps, steps_per_epoch, verbose)
    step_fn = _distributed_step(model, strategy)
    batches = _distributed_batches(strategy, stream)
    model.stop_training = False
    step, logs = start_step, {}
    callback_list.on_train_begin()
    while step < total_steps and not model.stop_training:
        epoch, batch_index = divmod(step, steps_per_epoch)
        if batch_index == 0 or step == start_step:
            for metric in model.metrics:
                metric.reset_state()
            callback_list.on_epoch_begin(epoch)
        callback_list.on_train_batch_begin(batch_index)
        batch = next(batches, None)
        if batch is None:
            break
        step += 1
        logs = _step_logs(step_fn, batch)
        if not all(math.isfinite(value) for value in logs.values()):
            callback_list.on_train_end()
            raise NonFiniteStep(step, "the loss")
        callback_list.on_train_batch_end(batch_index, logs)
        if step % steps_per_epoch == 0 or step == total_steps:
            callback_list.on_epoch_end(epoch, dict(logs))
    callback_list.on_train_end(logs)
    return step
