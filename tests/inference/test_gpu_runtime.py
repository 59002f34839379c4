"""The exported graph on LiteRT's real GPU accelerator (ML Drift on WebGPU/Dawn), run on the
SwiftShader software Vulkan device (tools/swiftshader.py), against the CPU and Keras.

`is_fully_accelerated()` says where the ops ran, not whether they are right, and the rules
checker is a prediction: these tests run the graph. Tiny random-weight models of every recipe
shape (digits.flags as it is; voc.flags at N = 128, VGG16 included; the paper's dense head
beside the recipes' spatial one), float32 / float16 / int8 exports, on random, all-black,
all-white and cluttered_digits canvases. The GPU runs in a child process: the device is read
from VK_ICD_FILENAMES when LiteRT loads. Skipped only where the device cannot be fetched.
"""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from canvases import cluttered_canvases
from conftest import QUERY_HEAD, ROOT, run_python, tiny_model_config
from rarl_tf.export import recipes, tflite
from rarl_tf.inference import litert
from rarl_tf.inference.prediction import keras_predict
from rarl_tf.model.factory import build_model

WORKER = os.path.join(ROOT, "tests", "litert_worker.py")
OUTPUTS = ("scores", "boxes", "centres")
KERAS_NAMES = {"scores": "probs", "boxes": "boxes", "centres": "centres"}

# Largest |GPU - CPU| of one .tflite: float32 arithmetic on both (measured <= 2e-7).
GPU_VS_CPU = 1e-4
# Largest |export - Keras| (every output) of a float32 export: as tests/export/test_export_gpu.py.
FLOAT32_VS_KERAS = 1e-4
# A float16 export against Keras: scores only (float16 weights may move the spatial head's
# choice on a near tie by a whole cell); measured 3e-6 on these random weights. int8 exports
# do not run on the GPU accelerator (a segmentation fault): litert refuses them, tested below.
QUANTIZED_SCORES_VS_KERAS = {"float16": 1e-3}


def sample_images(image_size: int, canvases: int = 3) -> list[np.ndarray]:
    """A random image, an all-black one (every cell ties), an all-white one, and canvases."""
    n = image_size
    noise = np.random.default_rng(0).uniform(0, 255, (1, n, n, 3)).astype(np.float32)
    return [
        noise,
        np.zeros((1, n, n, 3), np.float32),
        np.full((1, n, n, 3), 255, np.float32),
    ] + cluttered_canvases(canvases, n)


def _cases():
    digits = recipes.model_config_from_flagfile(os.path.join(ROOT, "digits.flags"))
    voc = dict(backbone_weights="none", image_size=128, crop_margin=16)
    voc_flags = os.path.join(ROOT, "voc.flags")
    # voc.flags's head (crop 7, flatten, 512-wide embedding and LSTM, 5 steps, 9 anchors, an
    # 8 x 8 map at N = 128) on a small 5-block backbone of the same stride (16): VGG16 takes
    # ~2 min to compile and run on SwiftShader, so it is the slow case.
    voc_small = recipes.model_config_from_flagfile(
        voc_flags, backbone="small_vgg", backbone_widths=(8, 16, 32, 64, 64), **voc
    )
    # name: (config, classes, quantization, GPU precision)
    return {
        "digits": (digits, 10, "none", "fp32"),
        "digits_float16": (digits, 10, "float16", "fp32"),
        "digits_gpu_fp16": (digits, 10, "none", "fp16"),
        "voc128_small_backbone": (voc_small, 20, "none", "fp32"),
        "dense_head": (tiny_model_config(loc_head="dense"), 10, "none", "fp32"),
        "query_head_own_state": (
            tiny_model_config(**QUERY_HEAD, loc_hidden=8, policy_units=6, inhibition_radius=0.3),
            10,
            "none",
            "fp32",
        ),
        "voc128_vgg16": (recipes.model_config_from_flagfile(voc_flags, **voc), 20, "none", "fp32"),
    }


CASES = (
    "digits",
    "digits_float16",
    "voc128_small_backbone",
    "dense_head",
    "query_head_own_state",
)
# fp16 on SwiftShader computes in float32 (no 16-bit shaders): measured identical to fp32.
SLOW_CASES = ("voc128_vgg16", "digits_gpu_fp16")


@pytest.fixture(scope="module")
def gpu_env():
    from tools import swiftshader

    try:
        return swiftshader.gpu_env()
    except swiftshader.Unavailable as err:
        pytest.skip(
            f"no GPU device here: the SwiftShader Vulkan device could not be fetched ({err})"
        )


def run_worker(models, images, env, folder) -> tuple[dict, str]:
    """Runs tests/litert_worker.py on `models` [{"path", "precision"}] with `images` [list of
    [1, N, N, 3] per model]; (results, the child's stderr)."""
    images_path, output = os.path.join(folder, "images.npz"), os.path.join(folder, "out.npz")
    np.savez(images_path, **{f"m{i}": np.stack(x) for i, x in enumerate(images)})
    spec = os.path.join(folder, "spec.json")
    with open(spec, "w") as f:
        json.dump({"models": models, "images": images_path, "output": output}, f)
    child = subprocess.run(
        [sys.executable, WORKER, spec], env=env, capture_output=True, text=True, timeout=600
    )
    assert child.returncode == 0, child.stderr[-3000:]
    with np.load(output) as results:
        return dict(results), child.stderr


def run_cases(names, env, folder) -> dict:
    """{case: Run} for the cases `names` of `_cases()`, exported to `folder` and run on the
    GPU and the CPU by one worker process."""
    cases, built, models, images, wanted = _cases(), {}, [], [], []
    for name in names:
        config, classes, quantization, precision = cases[name]
        key = (id(config), classes)
        if key not in built:
            # The same random weights whichever cases run before (the global Keras seed sets
            # the initialisers).
            keras.utils.set_random_seed(0)
            built[key] = build_model(config, classes, seed=0, backbone_weights="none")
        model, pixels = built[key], sample_images(config.image_size)
        path = os.path.join(folder, f"{name}.tflite")
        with open(path, "wb") as f:
            f.write(tflite.convert_model(model, config.image_size, quantization))
        models.append({"path": path, "precision": precision})
        images.append(pixels)
        want = [keras_predict(model, x) for x in pixels]
        wanted.append({out: np.stack([w[KERAS_NAMES[out]] for w in want]) for out in OUTPUTS})
    results, log = run_worker(models, images, env, folder)
    assert "Selected adapter: SwiftShader" in log, log[-3000:]
    return {
        name: Run(
            cases[name][2],
            cases[name][3],
            wanted[i],
            {o: results[f"m{i}.gpu.{o}"] for o in OUTPUTS},
            {o: results[f"m{i}.cpu.{o}"] for o in OUTPUTS},
            bool(results[f"m{i}.fully"]),
        )
        for i, name in enumerate(names)
    }


@dataclasses.dataclass
class Run:
    quantization: str
    precision: str
    keras: dict
    gpu: dict
    cpu: dict
    fully_accelerated: bool


@pytest.fixture(scope="module")
def runs(gpu_env, tmp_path_factory):
    return run_cases(CASES, gpu_env, str(tmp_path_factory.mktemp("gpu_runtime")))


def _max_diff(a, b) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def check_gpu_equals_cpu(name: str, run: Run) -> None:
    assert run.fully_accelerated, f"{name}: not fully accelerated on the GPU"
    tolerance = GPU_VS_CPU if run.precision == "fp32" else litert.TOLERANCES["fp16"]
    for out in OUTPUTS:
        assert run.gpu[out].shape == run.cpu[out].shape
        diff = _max_diff(run.gpu[out], run.cpu[out])
        assert diff <= tolerance, f"{name}: {out} differs from the CPU's by {diff:.3g}"
    np.testing.assert_array_equal(run.gpu["scores"].argmax(-1), run.cpu["scores"].argmax(-1))


def check_gpu_equals_keras(name: str, run: Run) -> None:
    if run.quantization == "none":
        tolerance = FLOAT32_VS_KERAS if run.precision == "fp32" else litert.TOLERANCES["fp16"]
        for out in OUTPUTS:
            diff = _max_diff(run.gpu[out], run.keras[out])
            assert diff <= tolerance, f"{name}: {out} differs from Keras's by {diff:.3g}"
    else:
        diff = _max_diff(run.gpu["scores"], run.keras["scores"])
        assert diff <= QUANTIZED_SCORES_VS_KERAS[run.quantization], (name, diff)
    np.testing.assert_array_equal(run.gpu["scores"].argmax(-1), run.keras["scores"].argmax(-1))


@pytest.mark.parametrize("case", CASES)
def test_gpu_takes_every_op_and_equals_the_cpu(runs, case):
    check_gpu_equals_cpu(case, runs[case])


# The voc128 case differed from Keras (2.4e-4) while crop_and_resize wrote 0 for samples its
# float32 arithmetic put just past the map's edge; every crop now keeps boxes inside the map
# (crop.inside_map; tests/model/test_crop.py).
@pytest.mark.parametrize("case", CASES)
def test_gpu_equals_keras(runs, case):
    check_gpu_equals_keras(case, runs[case])


@pytest.mark.slow
def test_slow_cases_on_the_gpu(gpu_env, tmp_path):
    for name, run in run_cases(SLOW_CASES, gpu_env, str(tmp_path)).items():
        check_gpu_equals_cpu(name, run)
        check_gpu_equals_keras(name, run)


def broadcast_model(path: str, broadcast: bool, k: int = 3, n: int = 8) -> None:
    """A .tflite of the exported signature (pixels [1, n, n, 3] -> scores [1, 4k], boxes
    [1, 1, k, 4], centres [1, 1, 2]) whose boxes are a centre plus k constant offsets.

    broadcast: as the old export did it, TILE + ADD (folded by the converter into
    ADD [1, 4] + const [k, 4], which the GPU accelerator computes as k copies of row 0); else
    as `anchors.anchor_boxes` now does it (a 0/1 product, then an ADD of equal shapes)."""
    import tensorflow as tf

    offsets = np.arange(4 * k, dtype=np.float32).reshape(k, 4) / 10.0

    @tf.function(input_signature=[tf.TensorSpec([1, n, n, 3], tf.float32, name="pixels")])
    def infer(pixels):
        centre = tf.reduce_mean(pixels, axis=[1, 2])[:, :2] / 255.0  # [1, 2]
        if broadcast:
            boxes = tf.tile(tf.concat([centre, centre], -1), [k, 1]) + tf.constant(offsets)
        else:
            spread = tf.constant(np.tile(np.eye(2, dtype=np.float32), [1, 2 * k]))
            boxes = tf.matmul(centre, spread) + tf.constant(offsets.reshape(1, 4 * k))
        flat = tf.reshape(boxes, [1, 4 * k])
        return {
            "scores": tf.nn.softmax(flat * 10.0),
            "boxes": tf.reshape(flat, [1, 1, k, 4]),
            "centres": tf.reshape(centre, [1, 1, 2]),
        }

    module = tf.Module()
    module.infer = infer
    staging = path + ".saved_model"
    tf.saved_model.save(module, staging, signatures={tflite.SIGNATURE: infer})
    with open(path, "wb") as f:
        f.write(tf.lite.TFLiteConverter.from_saved_model(staging).convert())
    with open(path[: -len(".tflite")] + ".labels.txt", "w") as f:
        f.write("\n".join(f"class{i}" for i in range(4 * k)) + "\n")


def _predict(path, image, env, *flags):
    return run_python(
        "-m", "rarl_tf.predict", f"--tflite={path}", *flags, str(image), env=env, timeout=300
    )


def test_predict_auto_warns_and_answers_as_the_cpu_where_the_gpu_is_wrong(gpu_env, tmp_path):
    path = str(tmp_path / "boxes.tflite")
    broadcast_model(path, broadcast=True)
    image = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), np.uint8)).save(image)
    cpu = _predict(path, image, gpu_env, "--accelerator=cpu")
    auto = _predict(path, image, gpu_env, "--accelerator=auto")
    gpu = _predict(path, image, gpu_env, "--accelerator=gpu")
    assert cpu.returncode == 0 and auto.returncode == 0, cpu.stderr[-2000:] + auto.stderr[-2000:]
    warnings = [line for line in auto.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "'boxes' differs from the CPU's" in warnings[0], warnings
    assert json.loads(auto.stdout) == json.loads(cpu.stdout)
    errors = [line for line in gpu.stderr.splitlines() if line.startswith("error:")]
    assert gpu.returncode == 2 and gpu.stdout == ""
    assert len(errors) == 1 and "'boxes' differs from the CPU's by" in errors[0], errors


def test_a_graph_the_gpu_computes_right_passes_the_load_check(gpu_env, tmp_path):
    path = str(tmp_path / "boxes.tflite")
    broadcast_model(path, broadcast=False)
    code = (
        "import sys, numpy as np; sys.path.insert(0, '.');"
        "from rarl_tf.inference.litert import CompiledRunner;"
        f"gpu, cpu = CompiledRunner({path!r}, 'gpu'), CompiledRunner({path!r}, 'cpu');"
        "x = np.random.default_rng(1).uniform(0, 255, (1, 8, 8, 3));"
        "a, b = gpu(pixels=x), cpu(pixels=x);"
        "print(gpu.device, max(float(np.abs(a[n] - b[n]).max()) for n in a))"
    )
    child = run_python("-c", code, env=gpu_env, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    device, diff = child.stdout.split()
    assert device == "gpu" and float(diff) <= GPU_VS_CPU


def write_int8_export(path: str, seed: int) -> str:
    """A tiny random-weight model (weights from `seed`) exported as int8 to `path`."""
    config = tiny_model_config()
    keras.utils.set_random_seed(seed)
    model = build_model(config, 10, seed=0, backbone_weights="none")
    with open(path, "wb") as f:
        f.write(
            tflite.convert_model(
                model, config.image_size, "int8", cluttered_canvases(4, config.image_size)
            )
        )
    return path


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    return write_int8_export(str(tmp_path_factory.mktemp("int8") / "int8.tflite"), 0)


def test_int8_exports_are_refused_for_the_gpu(int8_export, capsys):
    # No GPU run at all: the refusal comes before the accelerator (which would crash).
    with pytest.raises(ValueError, match="--accelerator=gpu: .* is an int8 export"):
        litert.compile_model(int8_export, "gpu")
    _, device = litert.compile_model(int8_export, "auto")
    assert device == "cpu" and "is an int8 export" in capsys.readouterr().err


@pytest.mark.slow
def test_the_gpu_accelerator_crashes_on_int8_exports(tmp_path, gpu_env):
    """The measured reason for the refusal above: if no export crashes any more, lift it.

    The crash does not come every time: a seed-0 export built in a fresh process crashed in 20
    of 20 runs, but the seed-0 export built inside pytest ran clean in 1 of 5 runs of the
    single-export form of this test, and an unseeded one once gave outputs bit for bit the
    CPU's. So five exports of five seeds, each run once; one segmentation fault shows the
    accelerator cannot be trusted with int8."""
    codes = []
    for seed in range(5):
        path = write_int8_export(str(tmp_path / f"int8_{seed}.tflite"), seed)
        code = (
            "import sys, numpy as np; sys.path.insert(0, '.');"
            "from rarl_tf.inference.litert import CompiledRunner, compile_on;"
            f"r = CompiledRunner.of(compile_on({path!r}, 'gpu'));"
            "r(pixels=np.zeros(r.input_shape('pixels'), np.float32))"
        )
        child = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=gpu_env, capture_output=True, timeout=300
        )
        codes.append(child.returncode)
    assert -11 in codes, f"no SIGSEGV in 5 int8 exports on the GPU (exit codes {codes})"


def test_probe_names_the_largest_difference():
    outputs = {"a": np.zeros(3, np.float32), "b": np.zeros(2, np.float32)}
    wrong = {"a": np.array([0, 0.5, 0], np.float32), "b": np.array([np.nan, 0], np.float32)}
    assert litert.largest_difference(lambda **_: outputs, lambda **_: outputs, [{}]) == ("a", 0.0)
    assert litert.largest_difference(lambda **_: wrong, lambda **_: outputs, [{}]) == (
        "b",
        float("inf"),
    )
    probes = litert.probe_inputs({"pixels": {"shape": [1, 2, 2, 3], "dtype": np.float32}})
    assert len(probes) == 2 and not probes[1]["pixels"].any()
    np.testing.assert_array_equal(
        probes[0]["pixels"],
        litert.probe_inputs({"pixels": {"shape": [1, 2, 2, 3], "dtype": np.float32}})[0]["pixels"],
    )


def test_gpu_precision_values_are_checked():
    with pytest.raises(
        ValueError, match="--gpu_precision=fp8 is not allowed: expected one of fp32, fp16"
    ):
        litert.compile_model("unused.tflite", "gpu", "fp8")
