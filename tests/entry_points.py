"""The project's entry points run as a user runs them (`python -m MODULE ARGS` in a process of
its own), and the tiny digits flags the end-to-end tests train with."""

import json

from conftest import python_env, run_python

TINY = [
    "--dataset=cluttered_digits/small",
    "--backbone=small_vgg",
    "--backbone_weights=none",
    "--backbone_widths=8,16",
    "--image_size=40",
    "--crop_margin=8",
    "--anchor_sizes=8,16,32",
    "--crop_size=3",
    "--embed_dim=16",
    "--lstm_units=16",
    "--num_steps=2",
    "--batch_size=16",
    "--epochs=2",
    "--steps_per_epoch=3",
    "--learning_rate=0.003",
    "--checkpoint_every_steps=2",
    "--shuffle_buffer=64",
]


def run(module, *args, data_dir):
    """`python -m module ARGS` as a user runs it, with TensorFlow datasets kept in `data_dir`."""
    return run_python("-m", module, *args, env=python_env(TFDS_DATA_DIR=str(data_dir)))


def run_to_json(module, *args, output, data_dir):
    """`run` with --output=`output`, which must succeed: (its result, the JSON it wrote)."""
    result = run(module, *args, f"--output={output}", data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(output.read_text())


def train_refused(tmp_path, *args, data_dir=None):
    """`rarl_tf.train ARGS` into tmp_path/run, which must stop on its flags before any work:
    exit status 2, no traceback, no model folder. Returns its stderr."""
    result = run(
        "rarl_tf.train",
        *args,
        f"--model_dir={tmp_path / 'run'}",
        data_dir=data_dir or tmp_path / "tfds",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # stopped before any work
    return result.stderr
