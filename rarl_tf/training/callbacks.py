"""The Keras callbacks of a training run: step checkpoints, the inhibition's annealing, the count
of skipped images and the attention pictures (`trainer.run_callbacks` puts them together)."""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from rarl_tf.config.experiment import ExperimentConfig
from rarl_tf.data import pipeline
from rarl_tf.inference import outputs
from rarl_tf.training import checkpoints, loop


def global_step(model: keras.Model) -> int:
    """The optimizer's step count (a mirrored variable under tf.distribute)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


class StepCheckpoint(keras.callbacks.Callback):
    """Saves model and optimizer every `every_steps` steps and at each epoch's end.

    Keras's BackupAndRestore resumes only from the start of an epoch; a step-level
    `tf.train.CheckpointManager` loses at most `every_steps` steps to a kill. A checkpoint is
    only written while every weight is finite (the loop stops on a non-finite loss first), so
    a diverged run keeps its last good state. An unreadable newest checkpoint is skipped for
    the one before it; a failed write stops the run (`checkpoints` module).
    """

    def __init__(self, directory: str, restore_from: str, every_steps: int, max_to_keep: int = 3):
        super().__init__()
        self.directory = directory
        self.restore_from = restore_from
        self.every_steps = every_steps
        self.max_to_keep = max_to_keep
        self.manager = None

    def attach(self, model: keras.Model) -> int:
        """Binds to `model`, restores the newest checkpoint if any; returns the global step."""
        # Optimizer slots must exist before a restore can fill them.
        model.optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        latest = checkpoints.restore_newest_readable(
            checkpoint, self.restore_from, owner=self.restore_from == self.directory
        )
        if latest:
            print(f"Resuming from {latest} (step {global_step(model)})", flush=True)
        # After the restore: it may have rewritten the folder's index of checkpoints.
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory, self.max_to_keep)
        return global_step(model)

    def save_now(self) -> None:
        """A checkpoint of the step reached (none if it is saved already)."""
        self._save()

    def _save(self):
        step = global_step(self.model)
        if not all(
            bool(tf.reduce_all(tf.math.is_finite(v)))
            for v in self.model.weights
            if "float" in str(v.dtype)
        ):
            raise loop.NonFiniteStep(step, "a weight")
        if self.manager.latest_checkpoint != os.path.join(self.directory, f"ckpt-{step}"):
            checkpoints.save(self.manager, step)

    def on_train_batch_end(self, batch, logs=None):
        if global_step(self.model) % self.every_steps == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._save()


class InhibitionAnneal(keras.callbacks.Callback):
    """Sets the policy's inhibition strength to 1 - step / `steps` (not below 0) before each
    training step, from the optimizer's step count (so a resumed run continues the schedule)."""

    def __init__(self, strength, steps: int):
        super().__init__()
        self.strength, self.steps = strength, max(int(steps), 1)

    def on_train_batch_begin(self, batch, logs=None):
        self.strength.assign(max(0.0, 1.0 - global_step(self.model) / self.steps))


def anneal_callbacks(
    model: keras.Model, config: ExperimentConfig, steps_per_epoch: int
) -> list[keras.callbacks.Callback]:
    """[InhibitionAnneal] for a model whose inhibition of return is annealed, else []."""
    strength = getattr(
        getattr(getattr(model, "agent", None), "policy", None), "inhibition_strength", None
    )
    if strength is None:
        return []
    return [
        InhibitionAnneal(strength, round(config.model.inhibition_anneal_epochs * steps_per_epoch))
    ]


class SkippedImages(keras.callbacks.Callback):
    """Reports images skipped because they did not decode, in the logs and on the console."""

    def __init__(self, counter: pipeline.SkipCounter):
        super().__init__()
        self.counter = counter
        self.reported = 0

    def on_epoch_end(self, epoch, logs=None):
        skipped = self.counter.undecodable
        if logs is not None:
            logs["skipped_undecodable"] = skipped
        if skipped > self.reported:
            print(
                f"warning: {skipped} training images could not be decoded and were skipped so "
                f"far (not a readable image, or over --max_pixels)",
                flush=True,
            )
            self.reported = skipped


class AttentionPictures(keras.callbacks.Callback):
    """At each epoch's end, writes the attended regions on a few fixed evaluation images to
    TensorBoard (`logs/attention`, `tf.summary.image`), drawn as `rarl_tf.predict` draws them.

    Args:
      images: [n, N, N, 3] float pixels (the evaluation pipeline's), the same every epoch.
    """

    def __init__(self, log_dir: str, images: np.ndarray):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.images = images

    def on_epoch_end(self, epoch, logs=None):
        from PIL import Image

        from rarl_tf.inference.visualize import draw_attention

        out = outputs.run_model(self.model, self.images)
        boxes = out["boxes"].numpy()  # [n, T, k, 4]
        centres = out["centres"].numpy()  # [n, T, 2], normalised to the image
        pictures = [
            np.asarray(draw_attention(Image.fromarray(np.uint8(image)), b, c, 192))
            for image, b, c in zip(self.images, boxes, centres)
        ]
        with self.writer.as_default():
            tf.summary.image(
                "attention", np.stack(pictures), step=epoch + 1, max_outputs=len(pictures)
            )
        self.writer.flush()
