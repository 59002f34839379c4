"""Training: data, model, optimizer and callbacks for one `ExperimentConfig`, resumable.

Everything a run writes lives under `model_dir`:

    config.json           the frozen config (evaluation, prediction and export rebuild from it)
    checkpoints/          tf.train checkpoints (model, optimizer, epoch) every
                          `checkpoint_every_steps` steps and at each epoch's end
    logs/                 TensorBoard
    history.csv           one row per epoch
    model.weights.h5      the final weights
"""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf

from rarl_tf.config import ExperimentConfig, load_config, save_config
from rarl_tf.data import pipeline
from rarl_tf.data.sources import get_source
from rarl_tf.model.factory import WEIGHTS_FILE, build_model

CHECKPOINT_DIR = "checkpoints"


class StepCheckpoint(keras.callbacks.Callback):
    """Saves model, optimizer and epoch every `every_steps` steps and at each epoch's end.

    Keras's BackupAndRestore resumes only from the start of an epoch; a step-level
    `tf.train.CheckpointManager` loses at most `every_steps` steps to a kill.
    """

    def __init__(self, directory: str, every_steps: int, max_to_keep: int = 3):
        super().__init__()
        self.directory = directory
        self.every_steps = every_steps
        self.max_to_keep = max_to_keep
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.manager = None

    def attach(self, model: keras.Model) -> int:
        """Binds to `model`, restores the newest checkpoint if any; returns the epoch to start."""
        # Optimizer slots must exist before a restore can fill them.
        model.optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory, self.max_to_keep)
        if self.manager.latest_checkpoint:
            checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            print(f"Resuming from {self.manager.latest_checkpoint} (epoch {int(self.epoch)}, "
                  f"step {int(model.optimizer.iterations)})", flush=True)
        return int(self.epoch)

    def _save(self):
        self.manager.save(checkpoint_number=int(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) % self.every_steps == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self._save()


def learning_rate(config: ExperimentConfig, steps_per_epoch: int):
    """The configured schedule: constant, or linear warm-up then cosine decay to 0."""
    t = config.train
    if t.lr_schedule == "constant":
        return t.learning_rate
    total = t.epochs * steps_per_epoch
    warmup = int(t.warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else t.learning_rate, decay_steps=total - warmup,
        warmup_target=t.learning_rate if warmup else None, warmup_steps=warmup)


def prepare_model_dir(config: ExperimentConfig, model_dir: str) -> ExperimentConfig:
    """Writes config.json, or checks that a resumed run asks for the same experiment."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, "config.json")
    if os.path.exists(path):
        saved = load_config(model_dir)
        if dataclasses.replace(saved, class_names=config.class_names) != config:
            raise ValueError(f"{model_dir} holds a run with a different configuration; use a new "
                             f"--model_dir, or the same flags to resume (saved config: {path})")
    save_config(config, model_dir)
    return config


def train(config: ExperimentConfig, model_dir: str, verbose: int = 1
          ) -> tuple[keras.Model, ExperimentConfig]:
    """Trains (or resumes) the experiment in `model_dir` and writes its final weights.

    Returns the model and the config as saved (with the dataset's class names).
    """
    source = get_source(config.data.dataset)
    config = dataclasses.replace(config, class_names=source.class_names)
    prepare_model_dir(config, model_dir)
    keras.utils.set_random_seed(config.train.seed)

    m, t = config.model, config.train
    examples = source.load(source.train_split, config.data.data_dir, True, t.seed)
    batches = pipeline.train_batches(examples, m.image_size, m.crop_margin, t.batch_size,
                                     t.seed, config.data.shuffle_buffer)
    steps_per_epoch = t.steps_per_epoch or int(batches.cardinality())
    if steps_per_epoch <= 0:
        raise ValueError(f"the training split of {config.data.dataset} has fewer images than one "
                         f"batch (--batch_size={t.batch_size}) or an unknown size; set "
                         f"--steps_per_epoch")
    if t.steps_per_epoch:
        batches = batches.repeat()

    model = build_model(m, len(source.class_names), seed=t.seed)
    optimizer = keras.optimizers.Adam(learning_rate(config, steps_per_epoch),
                                      beta_1=t.beta_1, beta_2=t.beta_2)
    # crop_and_resize has no XLA kernel, so the step is compiled as a plain tf.function.
    model.compile(optimizer=optimizer, jit_compile=False)

    checkpoint = StepCheckpoint(os.path.join(model_dir, CHECKPOINT_DIR), t.checkpoint_every_steps)
    initial_epoch = checkpoint.attach(model)
    callbacks = [checkpoint,
                 keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
                 keras.callbacks.CSVLogger(os.path.join(model_dir, "history.csv"),
                                           append=initial_epoch > 0),
                 keras.callbacks.TerminateOnNaN()]
    if initial_epoch < t.epochs:
        model.fit(batches, epochs=t.epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)
    model.save_weights(os.path.join(model_dir, WEIGHTS_FILE))
    return model, config
