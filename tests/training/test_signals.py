"""SIGTERM and SIGINT during training, sent to `python -m rarl_tf.train` as a scheduler or a
user sends them (issue 29): a checkpoint of the step reached, one line naming the step to
resume from, exit 128 + the signal; the same command resumes from that step."""

import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, python_env
from entry_points import TINY

# 400 steps: far more than the few seconds each run is given before its signal.
LONG = [f for f in TINY if not f.startswith(("--epochs", "--steps_per_epoch", "--checkpoint"))]
LONG += ["--epochs=1", "--steps_per_epoch=400", "--checkpoint_every_steps=1000"]


def stopped_by(signum, model_dir, tmp_path, name, data_dir):
    """Runs the training command, sends `signum` once its loop is running; returns (exit
    status, stdout, stderr)."""
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "rarl_tf.train", *LONG, f"--model_dir={model_dir}"],
            cwd=ROOT,
            env=python_env(TFDS_DATA_DIR=str(data_dir)),
            stdout=stdout,
            stderr=stderr,
        )
        deadline = time.monotonic() + 300
        while "Training (Ctrl-C" not in out.read_text() and time.monotonic() < deadline:
            assert child.poll() is None, err.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1.0)
        child.send_signal(signum)
        code = child.wait(timeout=300)
    return code, out.read_text(), err.read_text()


def resume_step(stderr: str, signame: str) -> int:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert f"training stopped by {signame} at global step" in errors[0]
    return int(re.search(r"run the same command to resume from step (\d+)$", errors[0])[1])


@pytest.mark.slow
def test_a_signal_saves_a_checkpoint_and_the_same_command_resumes_there(tmp_path, digits_tfds):
    model_dir = tmp_path / "run"
    code, _, stderr = stopped_by(signal.SIGTERM, model_dir, tmp_path, "first", digits_tfds)
    assert code == 128 + signal.SIGTERM
    step = resume_step(stderr, "SIGTERM")
    assert 1 <= step < 400
    assert (model_dir / "checkpoints" / f"ckpt-{step}.index").exists()
    assert not (model_dir / "model.weights.h5").exists()  # not a finished model

    code, stdout, stderr = stopped_by(signal.SIGINT, model_dir, tmp_path, "second", digits_tfds)
    assert f"ckpt-{step} (step {step})" in stdout  # "Resuming from ...": the step it named
    assert code == 128 + signal.SIGINT
    assert resume_step(stderr, "SIGINT") >= step


def test_stop_on_signal_stops_after_the_step_and_gives_the_next_signal_back():
    import os
    import types

    from rarl_tf.training.signals import StopOnSignal

    before, before_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stopper = StopOnSignal()
    stopper.set_model(types.SimpleNamespace(stop_training=False))
    stopper.on_train_begin()
    os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode: no exit
    time.sleep(0.1)
    assert stopper.received == signal.SIGTERM and stopper.model.stop_training
    assert signal.getsignal(signal.SIGTERM) == before  # a second SIGTERM terminates
    stopper.on_train_end()
    assert signal.getsignal(signal.SIGINT) == before_int
