"""Shared test set-up: quiet TensorFlow, the repository's paths, a tiny model config.

The repository root and tests/ are on sys.path through pyproject.toml's pytest `pythonpath`, so
tests in the sub-folders import `conftest`, `fake_tfds` and the project alike.
"""

import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from rarl_tf.config.experiment import (  # noqa: E402
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Files the tests read: config snapshots, weight files of older runs.
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

# The sizes that make a model train in seconds on 2 CPU cores: a small backbone, narrow layers,
# T = 2 steps, N = 40 (32 px training crops). Anchors, ratios and crop size are left to the user.
TINY_SIZES = dict(
    backbone="small_vgg",
    backbone_weights="none",
    backbone_widths=(8, 16),
    image_size=40,
    crop_margin=8,
    embed_dim=16,
    lstm_units=16,
    num_steps=2,
)

# How digits.flags trains its location policy, at tiny size: a 5 x 5 grid under a 4-wide hidden
# layer, l_t fed to the LSTM, K = 2 trajectories, the log-likelihood reward. The head is apart.
POLICY_LEVERS = dict(
    loc_grid=5, loc_hidden=4, location_input=True, trajectories=2, reward="log_likelihood"
)
# digits.flags's own head on those levers: the spatial head with inhibition of return.
DIGITS_POLICY = dict(POLICY_LEVERS, loc_head="spatial", inhibition_radius=0.3, region_pool="max")
# The query head read by a policy state of its own (a GRU), on a 5 x 5 grid.
QUERY_HEAD = dict(loc_head="query", loc_grid=5, policy_state="own")


def tiny_model_config(**changes) -> ModelConfig:
    """A model small enough to train a few steps in seconds on 2 CPU cores."""
    values = dict(
        TINY_SIZES, anchor_sizes=(8.0, 16.0, 32.0), aspect_ratios=(2.0, 1.0, 0.5), crop_size=3
    )
    values.update(changes)
    return ModelConfig(**values)


def tiny_voc_run(**train) -> ExperimentConfig:
    """A tiny model's run on voc2007 as `fake_tfds` mocks it (under `tfds.testing.mock_data`):
    batches of 4, one epoch, lr 1e-3, a checkpoint every step; `train` changes TrainConfig."""
    values = dict(batch_size=4, epochs=1, learning_rate=1e-3, checkpoint_every_steps=1)
    values.update(train)
    return ExperimentConfig(
        model=tiny_model_config(),
        data=DataConfig(dataset="voc2007", download=True, shuffle_buffer=8),
        train=TrainConfig(**values),
    )


def tiny_batch(size: int, classes: int = 5):
    """`size` random 32 x 32 training crops and multi-hot labels (p = 0.4), of seed 0."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (size, 32, 32, 3)).astype(np.float32))
    labels = tf.constant((rng.uniform(size=(size, classes)) < 0.4).astype(np.float32))
    return images, labels


def compiled_tiny_model(optimizer, **changes):
    """A tiny 5-class model of fixed initial weights (global seed 0, seed 0), compiled without
    XLA with `optimizer`, whose slots are built."""
    import keras

    from rarl_tf.model.factory import build_model

    keras.utils.set_random_seed(0)
    model = build_model(tiny_model_config(**changes), 5, seed=0)
    model.compile(optimizer=optimizer, jit_compile=False)
    model.optimizer.build(model.trainable_variables)
    return model


def python_env(**variables) -> dict:
    """This process's environment with the repository on PYTHONPATH, and `variables`."""
    return dict(os.environ, PYTHONPATH=ROOT, **variables)


def run_python(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """`python ARGS` run from the repository root as a user runs it, its output captured as
    text; `env` is the child's whole environment (default: `python_env()`)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=python_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def tiny_config():
    return tiny_model_config()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A model_dir as `rarl_tf.train` leaves it (config.json + weights), for a tiny random model."""
    from rarl_tf.model.factory import build_model
    from rarl_tf.model_folder import WEIGHTS_FILE, save_config

    model_dir = tmp_path_factory.mktemp("tiny_model")
    config = ExperimentConfig(
        model=tiny_model_config(),
        data=DataConfig(dataset="cluttered_digits/small"),
        class_names=tuple(str(d) for d in range(10)),
    )
    save_config(config, str(model_dir))
    build_model(config.model, 10, seed=0).save_weights(str(model_dir / WEIGHTS_FILE))
    return model_dir


@pytest.fixture(scope="session")
def prepared_digits(tmp_path_factory):
    """A TFDS data_dir where cluttered_digits/small is prepared, built once per test process by
    the function `rarl_tf.train` prepares it with."""
    from rarl_tf.data.tfds_sources import cluttered_digits_builder

    folder = tmp_path_factory.mktemp("prepared_digits")
    cluttered_digits_builder("small", str(folder))
    return folder


@pytest.fixture
def digits_tfds(tmp_path, prepared_digits):
    """tmp_path/tfds holding a copy of `prepared_digits`: for the entry-point tests about
    something other than preparing the data (a process that prepares it takes seconds more;
    tests/test_cli.py's training still prepares its own)."""
    return shutil.copytree(prepared_digits, tmp_path / "tfds")


# The GPU-runtime tests (LiteRT's GPU accelerator on the SwiftShader device): those that use
# the `gpu_env` fixture, and those marked gpu_runtime. Where the device cannot be fetched they
# skip, saying why (`-rs` in pyproject.toml prints it); under CI=true a run in which they were
# collected and none executed fails: a CI that silently skipped them proved nothing on the GPU.
# Counted from the test reports, which reach the process that prints the summary: pytest
# itself, or pytest-xdist's controller, which collects nothing and sees every worker's reports
# (a worker alone may run none of them while another runs them all).
GPU_RUNTIME = {"collected": 0, "executed": 0}


# The longest test files run first (CPU seconds, child processes included, measured under
# `pytest -n 2` on 2026-12-06, longest first): pytest-xdist hands out whole files (--dist
# loadfile) in collection order (--no-loadscope-reorder, .ci/run), and one of these handed out
# last leaves the other worker idle until it ends.
LONGEST_FILES = (
    "training/test_faults.py",  # 117 s of CPU
    "test_cli.py",  # 80
    "inference/test_gpu_runtime.py",  # 72
    "export/test_export_parity.py",  # 62
    "export/test_export_gpu.py",  # 52
    "export/test_export_tflite.py",  # 49
    "training/test_distribute.py",  # 44
    "tools/test_ablation.py",  # 34
    "export/test_export_web.py",  # 31
    "export/test_recipe_smoke.py",  # 28
)


def _file_rank(item) -> int:
    path = item.path.relative_to(ROOT).as_posix().removeprefix("tests/")
    return LONGEST_FILES.index(path) if path in LONGEST_FILES else len(LONGEST_FILES)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "gpu_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gpu_runtime)
    items.sort(key=_file_rank)  # stable: each file's tests keep their order


def pytest_runtest_logreport(report):
    if "gpu_runtime" not in report.keywords:
        return
    # Every test that runs has a setup report, a skipped one included.
    GPU_RUNTIME["collected"] += report.when == "setup"
    GPU_RUNTIME["executed"] += report.when == "call" and not report.skipped


def gpu_runtime_failure(collected: int, executed: int, ci: bool) -> str | None:
    """The line that fails a CI run whose GPU-runtime tests all skipped (None: no failure)."""
    if ci and collected and not executed:
        return (
            f"error: none of the {collected} GPU-runtime tests executed (no SwiftShader device: "
            f"see the skip reasons above); CI=true requires them"
        )
    return None


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller decides
        return
    line = gpu_runtime_failure(
        GPU_RUNTIME["collected"], GPU_RUNTIME["executed"], os.environ.get("CI") == "true"
    )
    if line:
        print("\n" + line, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
