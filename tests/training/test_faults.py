"""Surviving faults: a SIGKILLed run resumes; a NaN loss stops and keeps the last good state;
one run per model folder; files written whole."""

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

from conftest import ROOT, python_env, run_python, tiny_voc_run
from entry_points import TINY, run
from fake_tfds import as_dataset_fn
from rarl_tf import atomic, model_folder
from rarl_tf.data import pipeline
from rarl_tf.training import callbacks, trainer

# 2 epochs x 20 steps, a checkpoint every 4: long enough to be killed mid-run.
LONGER = [*TINY, "--epochs=2", "--steps_per_epoch=20", "--checkpoint_every_steps=4"]


def test_sigkill_then_same_command_resumes_and_makes_exactly_the_configured_steps(
    tmp_path, digits_tfds
):
    model_dir, data_dir = tmp_path / "run", digits_tfds
    command = [sys.executable, "-m", "rarl_tf.train", *LONGER, f"--model_dir={model_dir}"]
    env = python_env(TFDS_DATA_DIR=str(data_dir))
    first = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    index = model_dir / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while not index.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, "the run ended before its first checkpoint"
    assert not (model_dir / "metrics.json").exists()
    # The killed run's lock file stays; the kernel dropped its lock, so it does not block.
    assert json.loads((model_dir / ".lock").read_text())["pid"] == first.pid

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
        return batches.map(
            lambda i, batch: (
                tf.where(i >= 2, tf.fill(tf.shape(batch[0]), np.nan), batch[0]),
                batch[1],
            )
        )

    monkeypatch.setattr(pipeline, "train_stream", poisoned_stream)
    config = tiny_voc_run(steps_per_epoch=5)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(12)):
        with pytest.raises(trainer.TrainingDiverged) as err:
            trainer.train(config, str(tmp_path), verbose=0)
    message = str(err.value)
    assert "at step 3" in message and "ckpt-2" in message
    kept = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-2"))
    floats = [
        kept.get_tensor(name)
        for name, dtype in kept.get_variable_to_dtype_map().items()
        if dtype.is_floating
    ]
    assert floats and all(np.isfinite(v).all() for v in floats)
    assert not (tmp_path / "checkpoints" / "ckpt-3.index").exists()
    assert not (tmp_path / "model.weights.h5").exists()


def test_diverging_run_exits_1_with_one_line_naming_the_step_and_checkpoint(tmp_path, digits_tfds):
    # Adam at lr 1e30 sends the weights to infinity within a couple of steps.
    result = run(
        "rarl_tf.train",
        *TINY,
        "--learning_rate=1e30",
        "--checkpoint_every_steps=1",
        f"--model_dir={tmp_path / 'run'}",
        data_dir=digits_tfds,
    )
    assert result.returncode == 1
    error = re.search(
        r"error: the loss became NaN or infinite at step (\d+); .* kept the last "
        r"good checkpoint \S+ckpt-(\d+)",
        result.stderr,
    )
    assert error, result.stderr[-2000:]
    assert int(error.group(2)) == int(error.group(1)) - 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "model.weights.h5").exists()


def _wait_for_lock(model_dir, process, timeout=300):
    """Waits until `process` has locked `model_dir` and recorded itself in the lock file."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        try:
            if json.loads((model_dir / ".lock").read_text())["pid"] == process.pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("the first run never took the folder's lock")


def _listing(folder):
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    )


def test_a_second_run_on_the_same_folder_stops_and_the_first_finishes(tmp_path, digits_tfds):
    model_dir, data_dir = tmp_path / "run", digits_tfds
    command = [sys.executable, "-m", "rarl_tf.train", *LONGER, f"--model_dir={model_dir}"]
    env = python_env(TFDS_DATA_DIR=str(data_dir))
    first = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_lock(model_dir, first)
        # Frozen while the second run starts, so the test does not race the first's end.
        first.send_signal(signal.SIGSTOP)
        before = _listing(model_dir)
        second = run("rarl_tf.train", *LONGER, f"--model_dir={model_dir}", data_dir=data_dir)
        assert _listing(model_dir) == before  # the second run wrote nothing
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=600)
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    message = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and f"--model_dir={model_dir} is in use by another run" in message[0]
    assert f"pid {first.pid} on " in message[0]
    assert first.returncode == 0, err[-3000:]
    assert "Resuming" not in out
    assert json.loads((model_dir / "metrics.json").read_text())["steps"] == 40
    # The first run's own checkpoint schedule (every 4 steps, the last 3 kept), nothing else.
    state = tf.train.get_checkpoint_state(str(model_dir / "checkpoints"))
    assert [p.rsplit("-", 1)[1] for p in state.all_model_checkpoint_paths] == ["32", "36", "40"]


def test_lock_names_the_holder_and_is_dropped_when_it_ends(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from rarl_tf import model_folder; "
            "model_folder.acquire(sys.argv[1]); print('locked', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=python_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(model_folder.ModelDirBusy, match=f"pid {holder.pid} on "):
            model_folder.acquire(str(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    model_folder.acquire(str(tmp_path))  # the kernel dropped the dead holder's lock
    model_folder.acquire(str(tmp_path))  # re-entrant within a process
    model_folder.release(str(tmp_path))


def test_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic.write_json(str(path), {"mAP": 0.5})

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        atomic.write_json(str(path), {"mAP": 0.9})
    assert json.loads(path.read_text()) == {"mAP": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left


@pytest.mark.parametrize(
    "content",
    [
        b'{"model": {"backbone": "small_vgg", "image_si',
        b"\x00" * 64,
        b'["not", "a", "config"]',
        b'{"model": {"no_such_key": 1}}',
    ],
    ids=["truncated", "zeros", "a list", "unknown key"],
)
def test_a_corrupt_config_is_named(tmp_path, content):
    from rarl_tf.model_folder import load_config

    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(
        model_folder.CorruptFile,
        match=r"config.json is not a readable run "
        r"configuration .* delete it and rerun",
    ):
        load_config(str(tmp_path))


@pytest.mark.parametrize("broken", ["config.json", "model.weights.h5"])
def test_predict_names_a_truncated_file_instead_of_a_traceback(tiny_model_dir, tmp_path, broken):
    import shutil

    from PIL import Image

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    data = (model_dir / broken).read_bytes()
    (model_dir / broken).write_bytes(data[: len(data) // 2])
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    result = run("rarl_tf.predict", f"--model_dir={model_dir}", str(image), data_dir=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{model_dir / broken} is" in errors[0]
    assert "rerun" in errors[0]  # says what to do


def _variable_checkpoints(directory, steps):
    """A CheckpointManager over one variable, saved at `steps` with the step as its value."""
    value = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(value=value)
    manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=5)
    for step in steps:
        value.assign(float(step))
        manager.save(checkpoint_number=step)
    return value, checkpoint, manager


def _truncate(prefix):
    data = tf.io.gfile.glob(prefix + ".data-*")[0]
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)


def test_an_unreadable_newest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys):
    from rarl_tf.training import checkpoints

    value, checkpoint, _ = _variable_checkpoints(tmp_path, [2, 4, 6])
    _truncate(str(tmp_path / "ckpt-6"))
    (tmp_path / "checkpoint").write_text("garbage that is not a checkpoint state")
    value.assign(-1.0)
    restored = checkpoints.restore_newest_readable(checkpoint, str(tmp_path))
    assert restored == str(tmp_path / "ckpt-4")
    assert float(value) == 4.0
    out = capsys.readouterr().out
    assert f"checkpoint {tmp_path / 'ckpt-6'} cannot be read" in out
    assert f"resuming from the older checkpoint {tmp_path / 'ckpt-4'}" in out
    # Moved aside, and the index names the readable ones, so a new ckpt-6 can be written.
    assert (tmp_path / "unreadable" / "ckpt-6.index").exists()
    assert not (tmp_path / "ckpt-6.index").exists()
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-4")


def test_no_readable_checkpoint_is_named_not_a_fresh_start(tmp_path):
    from rarl_tf.training import checkpoints

    _, checkpoint, _ = _variable_checkpoints(tmp_path, [2, 4])
    for step in (2, 4):
        _truncate(str(tmp_path / f"ckpt-{step}"))
    with pytest.raises(model_folder.CorruptFile, match=f"none of the 2 checkpoints in {tmp_path}"):
        checkpoints.restore_newest_readable(checkpoint, str(tmp_path))
    assert checkpoints.restore_newest_readable(checkpoint, str(tmp_path / "new")) is None


def test_training_resumes_from_the_previous_checkpoint_when_the_newest_is_truncated(
    tmp_path, capsys
):
    config = tiny_voc_run(epochs=2, steps_per_epoch=3, checkpoint_every_steps=2)
    folder = tmp_path / "checkpoints"
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(12)):
        trainer.train(config, str(tmp_path), verbose=0)
        assert tf.train.latest_checkpoint(str(folder)) == str(folder / "ckpt-6")
        _truncate(str(folder / "ckpt-6"))
        capsys.readouterr()
        model, _ = trainer.train(config, str(tmp_path), verbose=0)
    out = capsys.readouterr().out
    assert f"checkpoint {folder / 'ckpt-6'} cannot be read" in out
    assert f"Resuming from {folder / 'ckpt-4'} (step 4)" in out
    assert callbacks.global_step(model) == 6  # steps 5 and 6 made again, not from 0
    assert (folder / "unreadable" / "ckpt-6.index").exists()
    assert tf.train.latest_checkpoint(str(folder)) == str(folder / "ckpt-6")  # written anew
    tf.train.load_checkpoint(str(folder / "ckpt-6"))  # and readable


# Runs rarl_tf.train with the N-th checkpoint save failing as a full disk makes it fail: part of
# the checkpoint's files written, then TensorFlow's own ENOSPC error (a write to /dev/full).
FULL_DISK_DRIVER = """
import os, runpy, sys
import tensorflow as tf
fail_at, args = int(sys.argv[1]), sys.argv[2:]
real_save, calls = tf.train.CheckpointManager.save, [0]
def save(self, checkpoint_number=None, **kwargs):
    calls[0] += 1
    if calls[0] == fail_at:
        prefix = os.path.join(self.directory, f"ckpt-{checkpoint_number}")
        os.makedirs(prefix + "_temp", exist_ok=True)
        with open(prefix + ".data-00000-of-00001", "wb") as f:
            f.write(b"partial")
        tf.io.write_file("/dev/full", b"x" * 65536)
    return real_save(self, checkpoint_number=checkpoint_number, **kwargs)
tf.train.CheckpointManager.save = save
sys.argv = ["rarl_tf.train", *args]
runpy.run_module("rarl_tf.train", run_name="__main__")
"""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full for ENOSPC")
def test_a_full_disk_stops_cleanly_and_the_same_command_resumes(tmp_path, digits_tfds):
    model_dir, data_dir = tmp_path / "run", digits_tfds
    args = [*LONGER, f"--model_dir={model_dir}"]
    # Saves at steps 4, 8, 12: the third one meets the full disk.
    full = run_python(
        "-c", FULL_DISK_DRIVER, "3", *args, env=python_env(TFDS_DATA_DIR=str(data_dir))
    )
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    folder = model_dir / "checkpoints"
    assert f"could not write checkpoint {folder / 'ckpt-12'} at step 12" in errors[0]
    assert "No space left on device" in errors[0]
    assert f"last good checkpoint {folder / 'ckpt-8'} is intact" in errors[0]
    assert not list(folder.glob("ckpt-12*"))  # its partial files were removed
    assert tf.train.latest_checkpoint(str(folder)) == str(folder / "ckpt-8")
    assert not (model_dir / "metrics.json").exists()

    again = run("rarl_tf.train", *args, data_dir=data_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Resuming from {folder / 'ckpt-8'} (step 8)" in again.stdout
    assert json.loads((model_dir / "metrics.json").read_text())["steps"] == 40


def test_a_garbled_checkpoint_index_file_is_rewritten(tmp_path):
    from rarl_tf.training import checkpoints

    value, checkpoint, _ = _variable_checkpoints(tmp_path, [2, 4])
    (tmp_path / "checkpoint").write_text("}}} not a text proto")
    restored = checkpoints.restore_newest_readable(checkpoint, str(tmp_path))
    assert restored == str(tmp_path / "ckpt-4")
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-4")


def test_a_full_disk_while_writing_a_result_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    from rarl_tf import cli

    def main(argv):
        atomic.write_json(str(tmp_path / "metrics.json"), {"mAP": 1.0})

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    monkeypatch.delenv("RARL_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_status:
        cli.user_errors_exit(main)(["train"])
    assert exit_status.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"error: no space left to write {tmp_path / 'metrics.json'} (No space left on device)"
    )
    assert not list(tmp_path.iterdir())  # no temporary file left behind
