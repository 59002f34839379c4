"""Stopping a training run on SIGINT (Ctrl-C) or SIGTERM (what a scheduler sends before it kills
a job) without losing its steps.

Without this, Ctrl-C printed a KeyboardInterrupt traceback from deep inside TensorFlow and
SIGTERM ended the process at once (exit -15), losing up to one checkpoint interval. Here the
first signal lets the current step finish and ends the loop; the trainer then saves a
checkpoint and raises `TrainingInterrupted`, whose one line names the step the same command
resumes from, and the process exits with 128 + the signal's number (130, 143), as a shell
reports a process ended by that signal. A second signal acts as it would have without this
(KeyboardInterrupt, termination): a user who presses Ctrl-C twice means it.
"""

from __future__ import annotations

import signal
import threading

import keras

from rarl_tf import cli

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(cli.RunFailed):
    """A signal stopped training; a checkpoint of the step reached was saved (exit 128 + the
    signal's number)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopOnSignal(keras.callbacks.Callback):
    """Between `on_train_begin` and `on_train_end`, SIGINT and SIGTERM set
    `model.stop_training` (the loop ends after the current step) and are remembered in
    `received`. Handlers can only be installed from the main thread; elsewhere this does
    nothing."""

    def __init__(self):
        super().__init__()
        self.received: signal.Signals | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum)
        self.model.stop_training = True
        self._restore()  # the next signal acts as it would have

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_begin(self, logs=None):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
            # The line a user (or a test) sees once stopping is safe.
            print(
                "Training (Ctrl-C or SIGTERM: stop after this step and save a checkpoint)",
                flush=True,
            )

    def on_train_end(self, logs=None):
        self._restore()


def interrupted(received: signal.Signals, step: int, total_steps: int, kept: str | None):
    """The TrainingInterrupted of a run stopped by `received` at global step `step`, whose
    checkpoint `kept` was just saved."""
    return TrainingInterrupted(
        f"training stopped by {received.name} at global step {step} of {total_steps}; "
        f"checkpoint {kept} saved: run the same command to resume from step {step}",
        int(received),
    )
