"""`predict --tflite` as a user runs it, against what a user's machine and files hold: Mesa's
Vulkan drivers (which LiteRT's GPU accelerator cannot use, and which made it abort the whole
process), a truncated or foreign .tflite, another model's labels file (issue 29)."""

import glob
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import python_env, run_python
from rarl_tf.export import tflite
from rarl_tf.inference import litert


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    """(model.tflite, an image) of the tiny random model."""
    folder = tmp_path_factory.mktemp("litert_faults")
    path = folder / "model.tflite"
    tflite.export(str(tiny_model_dir), str(path), "none")
    image = folder / "image.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (40, 40, 3), np.uint8)).save(image)
    return path, image


def predict(*args, **env):
    """`python -m rarl_tf.predict ARGS` with `env` added to (None: removed from) this
    process's environment."""
    variables = python_env()
    for name, value in env.items():
        variables.pop(name, None)
        if value is not None:
            variables[name] = value
    return run_python("-m", "rarl_tf.predict", *map(str, args), env=variables, timeout=600)


def one_line(stderr: str, prefix: str) -> str:
    """The single `prefix` line of stderr (and no traceback, no C library abort)."""
    assert "Traceback" not in stderr and "free()" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def mesa_lavapipe_icd() -> str | None:
    """The ICD file of Mesa's lavapipe (Debian's mesa-vulkan-drivers), where installed."""
    found = [f for folder in litert.ICD_FOLDERS for f in glob.glob(f"{folder}/lvp_icd*.json")]
    return found[0] if found else None


# Slow: 3 predict processes; test_export_tflite's accelerator test covers auto/gpu by default.
@pytest.mark.slow
@pytest.mark.skipif(
    mesa_lavapipe_icd() is None,
    reason="Mesa's Vulkan drivers are not installed (apt-get install mesa-vulkan-drivers; "
    ".ci/run installs them where it can)",
)
def test_auto_answers_from_the_cpu_beside_mesas_vulkan_drivers(exported):
    # lavapipe, a real Vulkan driver Dawn refuses: LiteRT's GPU accelerator then aborted the
    # process at exit (free(): invalid pointer, exit 134) after printing its answer.
    path, image = exported
    icd = mesa_lavapipe_icd()
    cpu = predict(f"--tflite={path}", "--accelerator=cpu", image, VK_ICD_FILENAMES=icd)
    auto = predict(f"--tflite={path}", "--accelerator=auto", image, VK_ICD_FILENAMES=icd)
    gpu = predict(f"--tflite={path}", "--accelerator=gpu", image, VK_ICD_FILENAMES=icd)
    assert cpu.returncode == 0, cpu.stderr[-3000:]
    assert auto.returncode == 0, auto.stderr[-3000:]
    assert json.loads(auto.stdout) == json.loads(cpu.stdout)
    warning = one_line(auto.stderr, "warning:")
    assert "no usable GPU" in warning and "lvp" in warning and warning.endswith("on the CPU")
    assert gpu.returncode == 2 and gpu.stdout == "", gpu.stderr[-3000:]
    error = one_line(gpu.stderr, "error:")
    assert error.startswith("error: --accelerator=gpu: no usable GPU") and "lvp" in error


def test_a_gpu_trial_that_crashes_leaves_the_caller_standing(exported, monkeypatch):
    # Whatever kills the trial process (here an abort, as the Mesa case does) is a device
    # this process does not use: auto answers from the CPU, gpu stops with one line.
    path, _ = exported

    def aborting(*_):
        return [sys.executable, "-c", "import os; print('free(): invalid pointer'); os.abort()"]

    monkeypatch.setattr(litert, "trial_command", aborting)
    problem = litert.gpu_trial(str(path), True, "fp32")
    assert problem.startswith("no usable GPU: LiteRT's GPU accelerator crashed (SIGABRT)")
    with pytest.raises(ValueError, match="--accelerator=gpu: no usable GPU"):
        litert.compile_model(str(path), "gpu")
    _, device = litert.compile_model(str(path), "auto")
    assert device == "cpu"


def foreign_tflite(path) -> None:
    """A .tflite of another model: one Dense layer, input [1, 4] -> [1, 3]."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


@pytest.mark.parametrize("kind", ["truncated", "text", "foreign", "folder"])
def test_a_file_that_is_not_an_export_is_named(exported, tmp_path, kind):
    good, image = exported
    path = tmp_path / "m.tflite"
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[:5000])
    elif kind == "text":
        path.write_text("not a model\n")
    elif kind == "foreign":
        foreign_tflite(path)
    else:
        path.mkdir()
    (tmp_path / "m.labels.txt").write_text("".join(f"{d}\n" for d in range(10)))
    result = predict(f"--tflite={path}", image)
    assert result.returncode == 2 and result.stdout == ""
    error = one_line(result.stderr, "error:")
    assert str(path) in error
    if kind == "foreign":
        assert "answers ['output_0']" in error and "takes ['pixels']" in error


@pytest.mark.parametrize("names", [3, 11, 0])
def test_a_labels_file_of_another_model_is_named(exported, tmp_path, names):
    good, image = exported
    path = tmp_path / "m.tflite"
    path.write_bytes(good.read_bytes())
    labels = tmp_path / "m.labels.txt"
    labels.write_text("".join(f"class{i}\n" for i in range(names)))
    result = predict(f"--tflite={path}", image)
    assert result.returncode == 2 and result.stdout == ""
    error = one_line(result.stderr, "error:")
    assert f"{labels} names {names} classes, but the model beside it scores 10" in error


def test_a_missing_labels_file_is_named(exported, tmp_path):
    good, image = exported
    path = tmp_path / "m.tflite"
    path.write_bytes(good.read_bytes())
    result = predict(f"--tflite={path}", image)
    assert result.returncode == 2
    assert f"{tmp_path / 'm.labels.txt'} not found" in one_line(result.stderr, "error:")


def test_read_exported_accepts_the_export(exported):
    path, _ = exported
    size, names = litert.read_exported(str(path), os.path.splitext(path)[0] + ".labels.txt")
    assert size == 40 and names == [str(d) for d in range(10)]
