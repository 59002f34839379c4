"""tools/gpu_check.py on a CPU-only machine: it needs nothing of TensorFlow or the project,
runs the CPU part and stops with one error line (exit 2) where LiteRT finds no GPU."""

import os
import subprocess
import sys

import pytest

from export import tflite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "gpu_check.py")


@pytest.fixture(scope="module")
def model_path(tiny_model_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu_check") / "rarl.tflite"
    tflite.export(str(tiny_model_dir), str(path), "none")
    return path


def test_gpu_check_without_tensorflow_or_the_project(model_path, tmp_path):
    # Importing tensorflow or rarl_tf fails in the child: the script must not need them.
    for name in ("tensorflow", "rarl_tf", "export"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} is off')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, SCRIPT, str(model_path), "--runs=3"],
                            cwd=str(tmp_path), env=env, capture_output=True, text=True,
                            timeout=300)
    assert "is off" not in result.stderr
    assert "cpu: " in result.stdout and "ms per call" in result.stdout
    if result.returncode == 2:  # no GPU (as on the machines that run this suite)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "no usable GPU" in errors[0]
    else:  # a GPU machine: fully accelerated and equal to the CPU
        assert result.returncode == 0, result.stdout + result.stderr[-2000:]
        assert "is_fully_accelerated() = True" in result.stdout


def test_random_inputs_follow_the_signature():
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import gpu_check

    arrays = gpu_check.random_inputs(
        {"pixels": {"shape": [1, 4, 4, 3], "dtype": "float32"},
         "ids": {"shape": [2], "dtype": "int32"}}, seed=0)
    assert arrays["pixels"].shape == (1, 4, 4, 3) and arrays["pixels"].dtype == np.float32
    assert arrays["ids"].dtype == np.int32
    assert np.array_equal(arrays["pixels"], gpu_check.random_inputs(
        {"pixels": {"shape": [1, 4, 4, 3], "dtype": "float32"}}, seed=0)["pixels"])
