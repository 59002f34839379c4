"""Surviving faults: a SIGKILLed run resumes; a NaN loss stops and keeps the last good state."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import tiny_model_config
from fake_tfds import as_dataset_fn
from rarl_tf import training
from rarl_tf.config import DataConfig, ExperimentConfig, TrainConfig
from rarl_tf.data import pipeline
from test_cli import ROOT, TINY, run

# 2 epochs x 20 steps, a checkpoint every 4: long enough to be killed mid-run.
LONGER = [*TINY, "--epochs=2", "--steps_per_epoch=20", "--checkpoint_every_steps=4"]


def test_sigkill_then_same_command_resumes_and_makes_exactly_the_configured_steps(tmp_path):
    model_dir, data_dir = tmp_path / "run", tmp_path / "tfds"
    command = [sys.executable, "-m", "rarl_tf.train", *LONGER, f"--model_dir={model_dir}"]
    env = dict(os.environ, TFDS_DATA_DIR=str(data_dir), PYTHONPATH=ROOT)
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    index = model_dir / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while not index.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, "the run ended before its first checkpoint"
    assert not (model_dir / "metrics.json").exists()

    again = run("rarl_tf.train", *LONGER, f"--model_dir={model_dir}", data_dir=data_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = re.search(r"Resuming from \S+ckpt-(\d+) \(step (\d+)\)", again.stdout)
    assert resumed, again.stdout[-2000:]
    assert resumed.group(1) == resumed.group(2)
    assert 4 <= int(resumed.group(2)) < 40  # continued from the checkpoint, not from 0
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["steps"] == 40  # 2 epochs x 20 steps, not more
    # One row per epoch, whichever epoch the kill interrupted.
    rows = (model_dir / "history.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_stream = pipeline.train_stream

    def poisoned_stream(*args, **kwargs):
        # From the third batch (global step 3) on, the images are NaN.
        batches = real_stream(*args, **kwargs).enumerate()
        return batches.map(lambda i, batch: (
            tf.where(i >= 2, tf.fill(tf.shape(batch[0]), np.nan), batch[0]), batch[1]))

    monkeypatch.setattr(pipeline, "train_stream", poisoned_stream)
    config = ExperimentConfig(
        model=tiny_model_config(),
        data=DataConfig(dataset="voc2007", download=True, shuffle_buffer=8),
        train=TrainConfig(batch_size=4, epochs=1, steps_per_epoch=5, learning_rate=1e-3,
                          checkpoint_every_steps=1))
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(12)):
        with pytest.raises(training.TrainingDiverged) as err:
            training.train(config, str(tmp_path), verbose=0)
    message = str(err.value)
    assert "at step 3" in message and "ckpt-2" in message
    kept = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-2"))
    floats = [kept.get_tensor(name) for name, dtype in kept.get_variable_to_dtype_map().items()
              if dtype.is_floating]
    assert floats and all(np.isfinite(v).all() for v in floats)
    assert not (tmp_path / "checkpoints" / "ckpt-3.index").exists()
    assert not (tmp_path / "model.weights.h5").exists()


def test_diverging_run_exits_1_with_one_line_naming_the_step_and_checkpoint(tmp_path):
    # Adam at lr 1e30 sends the weights to infinity within a couple of steps.
    result = run("rarl_tf.train", *TINY, "--learning_rate=1e30", "--checkpoint_every_steps=1",
                 f"--model_dir={tmp_path / 'run'}", data_dir=tmp_path / "tfds")
    assert result.returncode == 1
    error = re.search(r"error: the loss became NaN or infinite at step (\d+); .* kept the last "
                      r"good checkpoint \S+ckpt-(\d+)", result.stderr)
    assert error, result.stderr[-2000:]
    assert int(error.group(2)) == int(error.group(1)) - 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "model.weights.h5").exists()
