"""tf.distribute: N replicas make the same update as one device; multi-worker runs finish.

Logical CPU devices must be configured before TensorFlow starts, so these run in subprocesses.
"""

import json
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, python_env, run_python
from entry_points import TINY

EQUIVALENCE = r"""
import json, sys
import numpy as np
import keras, tensorflow as tf
from rarl_tf.training import distribute
from rarl_tf.training import loop
from rarl_tf.model.factory import build_model
sys.path.insert(0, "tests")
from conftest import tiny_model_config

distribute.split_cpu(2)
# A continuous reward: eq. 5's top-n reward jumps when two near-equal logits of the tiny random
# model swap order, and a 1e-7 difference in reduction order between one device and two
# replicas then moved the baseline head by 2e-4 (seen once in three full-suite runs).
config = tiny_model_config(reward="log_likelihood")
side = config.image_size - config.crop_margin
rng = np.random.default_rng(0)
images = rng.uniform(0, 255, (3 * 8, side, side, 3)).astype(np.float32)
labels = (rng.uniform(size=(3 * 8, 10)) < 0.3).astype(np.float32)
labels[:, 0] = 1.0  # every image labeled
stream = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8, drop_remainder=True)

def train(strategy, initial):
    with strategy.scope():
        model = build_model(config, 10, seed=0)
        model.sample_locations = False  # the policy's mean: no sampling noise between runs
        if initial is not None:
            model.set_weights(initial)
        start = [w.copy() for w in model.get_weights()]
        # SGD, not Adam: Adam would hide a gradient scaled by the replica count.
        model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=False)
    steps = loop.train_steps(model, strategy, stream, 0, 3, 3, [], verbose=0)
    assert steps == 3, steps
    return start, model.get_weights()

default = distribute.make_strategy("default")
mirrored = distribute.make_strategy("mirrored", num_cpu_devices=2)
assert mirrored.num_replicas_in_sync == 2
start, one_device = train(default, None)
_, two_replicas = train(mirrored, start)
moved = max(float(np.abs(a - b).max()) for a, b in zip(start, one_device))
diff = max(float(np.abs(a - b).max()) for a, b in zip(one_device, two_replicas))
print(json.dumps({"moved": moved, "diff": diff}))
"""


def test_mirrored_on_two_cpus_matches_one_device():
    result = run_python("-c", EQUIVALENCE)
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    assert numbers["moved"] > 1e-3  # the steps did change the weights
    assert numbers["diff"] < 1e-5, numbers


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_finish_and_only_the_chief_writes(tmp_path, digits_tfds):
    # The dataset is prepared before the workers start (digits_tfds), so they do not race to
    # write it.
    data_dir, model_dir = digits_tfds, tmp_path / "run"
    workers = start_workers(model_dir, data_dir, TINY, free_ports(2))
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for index, (worker, output) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"worker {index}:\n{output[-3000:]}"

    # 2 epochs x 3 steps, checkpoints every 2 steps and at each epoch's end, kept by the chief.
    checkpoints = sorted(p.name for p in (model_dir / "checkpoints").glob("ckpt-*.index"))
    assert "ckpt-6.index" in checkpoints, checkpoints
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["steps"] == 6
    # The other worker's copies went to its scratch folder, not over the chief's files.
    assert (model_dir / ".workers" / "worker_1" / "checkpoints").is_dir()
    assert not (model_dir / ".workers" / "worker_1" / "metrics.json").exists()


def start_workers(model_dir, data_dir, flags_, ports):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = python_env(
            TFDS_DATA_DIR=str(data_dir),
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rarl_tf.train",
                    *flags_,
                    "--strategy=multi_worker",
                    f"--model_dir={model_dir}",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return workers


@pytest.mark.slow
def test_killed_workers_restarted_with_the_same_command_resume_together(tmp_path, digits_tfds):
    data_dir, model_dir = digits_tfds, tmp_path / "run"
    longer = [*TINY, "--epochs=2", "--steps_per_epoch=20", "--checkpoint_every_steps=4"]
    workers = start_workers(model_dir, data_dir, longer, free_ports(2))
    index = model_dir / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while not index.exists() and time.time() < deadline and all(w.poll() is None for w in workers):
        time.sleep(0.02)
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
    assert all(w.returncode == -signal.SIGKILL for w in workers), "a worker ended first"

    workers = start_workers(model_dir, data_dir, longer, free_ports(2))
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    steps = []
    for index, (worker, output) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"worker {index}:\n{output[-3000:]}"
        resumed = re.search(r"Resuming from \S+ \(step (\d+)\)", output)
        assert resumed, f"worker {index} did not resume:\n{output[-2000:]}"
        steps.append(int(resumed.group(1)))
    assert steps[0] == steps[1] and 4 <= steps[0] < 40  # both from the chief's checkpoint
    assert json.loads((model_dir / "metrics.json").read_text())["steps"] == 40
