"""tools/gpu_check.py: it needs nothing of TensorFlow or the project; on a CPU-only machine it
runs the CPU part and stops with one error line (exit 2) where LiteRT finds no GPU; on the
SwiftShader device (tools/swiftshader.py) it checks real images and labels its timing."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from rarl_tf.export import tflite

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
    result = subprocess.run(
        [sys.executable, SCRIPT, str(model_path), "--runs=3"],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
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
        {
            "pixels": {"shape": [1, 4, 4, 3], "dtype": "float32"},
            "ids": {"shape": [2], "dtype": "int32"},
        },
        seed=0,
    )
    assert arrays["pixels"].shape == (1, 4, 4, 3) and arrays["pixels"].dtype == np.float32
    assert arrays["ids"].dtype == np.int32
    assert np.array_equal(
        arrays["pixels"],
        gpu_check.random_inputs({"pixels": {"shape": [1, 4, 4, 3], "dtype": "float32"}}, seed=0)[
            "pixels"
        ],
    )


@pytest.mark.gpu_runtime
def test_gpu_check_on_the_software_gpu_with_real_images(model_path, tmp_path):
    import json

    import numpy as np

    from canvases import cluttered_canvases
    from tools import swiftshader

    try:
        env = swiftshader.gpu_env()
    except swiftshader.Unavailable as err:
        pytest.skip(
            f"no GPU device here: the SwiftShader Vulkan device could not be fetched ({err})"
        )
    images = tmp_path / "canvases.npy"
    np.save(images, np.concatenate(cluttered_canvases(4, 40)))
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            str(model_path),
            "--runs=2",
            "--random=2",
            f"--images={images}",
            f"--json={report}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    got = json.loads(report.read_text())
    assert got["fully_accelerated"] and got["exit_status"] == 0
    assert got["inputs"]["images"]["count"] == 4
    assert got["inputs"]["images"]["top1_disagreements"] == 0
    assert all(d <= 1e-3 for kind in got["inputs"].values() for d in kind["max_abs_diff"].values())
    assert "SwiftShader" in got["gpu_timing_note"] and "not a GPU speed" in got["gpu_timing_note"]


def test_gpu_check_refuses_images_of_another_shape(model_path, tmp_path):
    import numpy as np

    images = tmp_path / "wrong.npy"
    np.save(images, np.zeros((2, 32, 32, 3), np.float32))
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import gpu_check

    with pytest.raises(
        ValueError,
        match=r"holds an array of shape \[2, 32, 32, 3\]: expected "
        r"\[count, 40, 40, 3\]",
    ):
        gpu_check.image_inputs(
            str(images), {"pixels": {"shape": [1, 40, 40, 3], "dtype": np.float32}}
        )
