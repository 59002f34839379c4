import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from conftest import ROOT, run_python
from rarl_tf.export import tflite
from rarl_tf.export.registry import EXPORTERS
from rarl_tf.inference.prediction import keras_predict
from rarl_tf.model_folder import load_trained


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    """`python -m export.tflite` run as a user runs it: (the .tflite's path, its op names as
    the command printed them)."""
    path = tmp_path_factory.mktemp("tflite") / "rarl.tflite"
    result = run_python("-m", "export.tflite", f"--model_dir={tiny_model_dir}", f"--output={path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"TFLite model written to {path} ({path.stat().st_size} bytes)" in result.stdout
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("ops: ")]
    names = [
        name
        for entry in line[5:].split(", ")
        for name, n in [entry.split(" x")]
        for _ in range(int(n))
    ]
    return path, names


def test_labels_file_sits_beside_the_tflite_model(exported):
    path, _ = exported
    assert sorted(p.name for p in path.parent.iterdir()) == ["rarl.labels.txt", "rarl.tflite"]
    # One class name a line, in the model's order (tiny_model_dir's classes are "0".."9").
    assert (path.parent / "rarl.labels.txt").read_text() == "".join(f"{d}\n" for d in range(10))


def test_float32_tflite_equals_keras(exported, tiny_model_dir):
    path, _ = exported
    model, config = load_trained(str(tiny_model_dir))
    interpreter = Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner(tflite.SIGNATURE)
    assert interpreter.get_signature_list()[tflite.SIGNATURE] == {
        "inputs": ["pixels"],
        "outputs": ["boxes", "centres", "scores"],
    }
    rng = np.random.default_rng(0)
    side = config.model.image_size
    for _ in range(4):
        pixels = rng.uniform(0, 255, (1, side, side, 3)).astype(np.float32)
        got = runner(pixels=pixels)
        want = keras_predict(model, pixels)
        np.testing.assert_allclose(got["scores"], want["probs"], atol=1e-4)
        np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-4)
        np.testing.assert_allclose(got["centres"], want["centres"], atol=1e-4)
    # As predict and tools.export_accuracy run it: the registry's loader, a batch of two.
    pixels = rng.uniform(0, 255, (2, side, side, 3)).astype(np.float32)
    got = EXPORTERS["tflite"].load(str(path))(pixels)
    want = keras_predict(model, pixels)
    for name in ("probs", "boxes", "centres"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-4)


def test_predict_cli_runs_the_tflite_model(exported, tmp_path):
    import json
    import subprocess
    import sys

    from PIL import Image

    path, _ = exported
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (30, 45, 3), np.uint8)).save(image)
    root = ROOT
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rarl_tf.predict",
            f"--tflite={path}",
            f"--output_dir={tmp_path / 'out'}",
            str(image),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(record["scores"]) == {str(d) for d in range(10)}
    assert (tmp_path / "out" / "img_attention.png").exists()


def test_only_builtin_ops(exported):
    path, names = exported
    assert names and tflite.non_builtin_ops(names) == []
    assert sorted(tflite.op_names(path.read_bytes())) == sorted(names)
    # The crop is the matrix form: no CropAndResize (a Flex op) and no random op.
    assert "BATCH_MATMUL" in names
    assert not any("Random" in n or "CropAndResize" in n for n in names)


def test_non_builtin_ops_are_detected():
    assert tflite.non_builtin_ops(["CONV_2D", "FlexCropAndResize", "CUSTOM"]) == [
        "CUSTOM",
        "FlexCropAndResize",
    ]


def test_export_prints_the_gpu_delegate_check(tiny_model_dir, tmp_path, capsys):
    tflite.export(str(tiny_model_dir), str(tmp_path / "m.tflite"), "none")
    out = capsys.readouterr().out
    assert "0 would fall back to the CPU; 1 GPU partition(s)" in out
    assert "Analyzer" not in out


def test_export_refuses_ops_that_fall_back_to_the_cpu(tiny_model_dir, tmp_path, monkeypatch):
    from rarl_tf import cli
    from rarl_tf.export import gpu_graph, gpu_rules

    # The model's own call (before the rewrite) has ops the delegate refuses.
    monkeypatch.setattr(gpu_graph, "inference_function", tflite.keras_inference_function)
    path = tmp_path / "fallback.tflite"
    with pytest.raises(cli.RunFailed) as err:
        tflite.export(str(tiny_model_dir), str(path), "none")
    lines = str(err.value).splitlines()
    assert "--allow_cpu_fallback" in lines[0]
    assert len(lines) > 1 and all(line.startswith("op ") for line in lines[1:])
    assert not path.exists()
    with pytest.raises(SystemExit) as exit_info:
        cli.user_errors_exit(lambda argv: tflite.export(str(tiny_model_dir), str(path)))([""])
    assert exit_info.value.code == 1
    tflite.export(str(tiny_model_dir), str(path), "none", allow_cpu_fallback=True)
    report = gpu_rules.check_model(path.read_bytes())
    assert len(report.reasons) == len(lines) - 1


@pytest.mark.parametrize("quantization", ["float16", "int8"])
def test_quantized_exports_pass_the_gpu_delegates_rules(tiny_model_dir, quantization, monkeypatch):
    # A prediction from the rules (rarl_tf/export/gpu_rules.py), not a run: float16 runs on the GPU
    # in tests/inference/test_gpu_runtime.py; int8 crashes LiteRT's GPU accelerator and is
    # refused for it. Both are compared with Keras on the CPU in test_export_parity.py.
    from rarl_tf.export import gpu_rules

    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 255, (1, 40, 40, 3)).astype(np.float32) for _ in range(4)]
    model, _ = load_trained(str(tiny_model_dir))
    content = tflite.convert_model(model, 40, quantization, images)
    assert gpu_rules.check_model(content).fully_delegated


def _predict_cli(path, image, *flags):
    import subprocess
    import sys

    root = ROOT
    return subprocess.run(
        [sys.executable, "-m", "rarl_tf.predict", f"--tflite={path}", *flags, str(image)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _gpu_usable(path) -> bool:
    from rarl_tf.inference import litert

    try:
        litert.compile_model(str(path), "gpu")
        return True
    except ValueError:
        return False


def test_compiled_model_on_the_cpu_equals_the_interpreter(exported):
    from rarl_tf.inference.litert import CompiledRunner

    path, _ = exported
    runner = CompiledRunner(str(path), "cpu")
    assert runner.device == "cpu"
    interpreter = Interpreter(model_path=str(path)).get_signature_runner(tflite.SIGNATURE)
    pixels = np.random.default_rng(3).uniform(0, 255, (1, 40, 40, 3)).astype(np.float32)
    got, want = runner(pixels=pixels), interpreter(pixels=pixels)
    assert set(got) == {"scores", "boxes", "centres"}
    for name in got:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_predict_accelerator_flags(exported, tmp_path):
    import json

    from PIL import Image

    path, _ = exported
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (40, 40, 3), np.uint8)).save(image)
    cpu = _predict_cli(path, image, "--accelerator=cpu")
    assert cpu.returncode == 0, cpu.stderr[-2000:]
    want = json.loads(cpu.stdout.strip().splitlines()[-1])
    auto = _predict_cli(path, image, "--accelerator=auto")
    assert auto.returncode == 0, auto.stderr[-2000:]
    got = json.loads(auto.stdout.strip().splitlines()[-1])
    assert got["labels"] and [name for name, _ in got["labels"]] == [
        name for name, _ in want["labels"]
    ]
    for name, score in want["scores"].items():
        assert abs(got["scores"][name] - score) < 1e-3
    gpu = _predict_cli(path, image, "--accelerator=gpu")
    if _gpu_usable(path):
        assert gpu.returncode == 0, gpu.stderr[-2000:]
    else:
        # No GPU here: auto warned and ran on the CPU; gpu stops with one error line.
        assert "warning: --accelerator=auto: no usable GPU" in auto.stderr
        assert gpu.returncode == 2
        errors = [line for line in gpu.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "--accelerator=gpu" in errors[0]
        assert gpu.stdout.strip() == ""
