"""Runs an exported .tflite model through LiteRT's `CompiledModel` on the CPU or the GPU.

`ai_edge_litert`'s classic `Interpreter` runs on the CPU only (XNNPACK); a GPU is reached
through `CompiledModel` with `HardwareAccelerator.GPU` (ML Drift on WebGPU in ai-edge-litert
2.3). `is_fully_accelerated()` says where the ops ran, not whether they computed right (an
accelerator has run this project's graph to garbage with every op on it), so a GPU model is
checked at load: a fixed probe input runs on the GPU and on the CPU, and the outputs must
agree within the precision's tolerance. Imports neither TensorFlow nor the rest of the project.

That check runs in a child process (`python -m rarl_tf.inference.litert`, `gpu_trial`) before
this process touches the GPU: with Mesa's Vulkan drivers installed (any Linux desktop; Debian's
chromium pulls them in) LiteRT's GPU accelerator fails to find an adapter and then aborts the
process at exit (`free(): invalid pointer`, SIGABRT), whatever the caller did after. A crash
in the child is a device this process will not use, named in one line.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np

ACCELERATORS = ("cpu", "gpu", "auto")
# fp32: the GPU computes in float32 (GpuOptions.enforce_f32); fp16: in float16 where the
# device supports it (ML Drift's default), else float32.
PRECISIONS = ("fp32", "fp16")
# Largest |GPU - CPU| on any output of the probe that counts as agreement. fp32 measured
# <= 7.2e-7 on SwiftShader (docs/deployment.md, "The numbers and what each means"); fp16
# keeps ~3 significant digits.
TOLERANCES = {"fp32": 1e-3, "fp16": 1e-2}
SIGNATURE = "serving_default"
# The outputs of `rarl_tf.export.tflite`'s signature (`outputs.EXPORTED_NAMES`'s values).
EXPORTED_OUTPUTS = ("scores", "boxes", "centres")
# The GPU trial process's limit: compiling and running the probe on a software device
# (SwiftShader) took up to ~2 min for VGG16 at 128 px; a real GPU takes seconds.
TRIAL_TIMEOUT_S = 600
# How every message about a GPU that cannot be had begins (tests and users grep for it).
NO_GPU = "no usable GPU"
# Where the Vulkan loader looks for drivers when VK_ICD_FILENAMES is not set (named in the
# message of a device that cannot be used).
ICD_FOLDERS = ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d")


def _first_line(err: Exception) -> str:
    lines = [line.strip(" └") for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _check_choice(flag: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"--{flag}={value} is not allowed: expected one of {', '.join(allowed)}")


@contextlib.contextmanager
def _stdout_to_stderr():
    """File descriptor 1 sent to 2 for the block: LiteRT's native GPU loader prints INFO lines
    to stdout ("Failed to load OpenCL library ..."), where predict writes its JSON lines."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def compile_on(path: str, devices: str, precision: str = "fp32"):
    """A CompiledModel on `devices`: "cpu", "gpu" (the GPU only) or "gpu+cpu" (the GPU with
    the CPU for what it does not take)."""
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, GpuOptions, Options

    accel = {
        "cpu": HardwareAccelerator.CPU,
        "gpu": HardwareAccelerator.GPU,
        "gpu+cpu": HardwareAccelerator.GPU | HardwareAccelerator.CPU,
    }[devices]
    options = Options(
        hardware_accelerators=accel,
        cpu_options=CpuOptions(num_threads=1),
        gpu_options=GpuOptions(enforce_f32=precision == "fp32"),
    )
    with _stdout_to_stderr():
        return CompiledModel.from_file(path, options=options)


def _signature_problem(inputs: dict, outputs: dict) -> str | None:
    """What differs from `rarl_tf.export.tflite`'s signature: pixels float32 [1, N, N, 3] -> scores
    [1, C], boxes [1, T, k, 4], centres [1, T, 2] (all float32); None if nothing."""
    if set(inputs) != {"pixels"} or set(outputs) != set(EXPORTED_OUTPUTS):
        return (
            f"its signature {SIGNATURE!r} takes {sorted(inputs)} and answers {sorted(outputs)}, "
            f"where an export of `python -m rarl_tf.export.tflite` takes ['pixels'] and answers "
            f"{sorted(EXPORTED_OUTPUTS)}"
        )
    shapes = {n: [int(v) for v in d["shape"]] for n, d in {**inputs, **outputs}.items()}
    for name, details in {**inputs, **outputs}.items():
        if np.dtype(details["dtype"]) != np.float32:
            return f"its {name!r} is {np.dtype(details['dtype'])}, not float32"
    pixels, scores = shapes["pixels"], shapes["scores"]
    boxes, centres = shapes["boxes"], shapes["centres"]
    if len(pixels) != 4 or pixels[0] != 1 or pixels[3] != 3 or pixels[1] != pixels[2]:
        return f"its input 'pixels' is shaped {pixels}, not [1, N, N, 3]"
    expected = {"scores": 2, "boxes": 4, "centres": 3}
    for name, rank in expected.items():
        if len(shapes[name]) != rank or shapes[name][0] != 1:
            return f"its output {name!r} is shaped {shapes[name]}, not of rank {rank} with batch 1"
    if boxes[3] != 4 or centres[2] != 2 or boxes[1] != centres[1] or scores[1] < 1:
        return (
            f"its outputs are shaped {shapes}, not scores [1, C], boxes [1, T, k, 4], "
            f"centres [1, T, 2]"
        )
    return None


def read_exported(path: str, labels: str) -> tuple[int, list[str]]:
    """(N, class names) of an export of `python -m rarl_tf.export.tflite` and its labels file,
    checked before anything runs: the file is a TFLite model whose signature is the export's (one
    pixels input, scores / boxes / centres outputs of the export's shapes), and the labels file
    names one class per score.

    Raises:
      ValueError: naming the file and what is wrong (missing, not a TFLite model, another
        model's signature, labels that do not match the scores).
    """
    from ai_edge_litert.interpreter import Interpreter

    for file in (path, labels):
        if not os.path.isfile(file):
            what = "not found" if not os.path.exists(file) else "not a regular file"
            raise ValueError(f"{file} {what} (written by `python -m rarl_tf.export.tflite`)")
    try:
        with _stdout_to_stderr():
            interpreter = Interpreter(model_path=path)
        signatures = interpreter.get_signature_list()
        if SIGNATURE not in signatures:
            raise ValueError(f"it has no signature {SIGNATURE!r} (it has {sorted(signatures)})")
        runner = interpreter.get_signature_runner(SIGNATURE)
        problem = _signature_problem(runner.get_input_details(), runner.get_output_details())
        if problem:
            raise ValueError(problem)
        classes = int(runner.get_output_details()["scores"]["shape"][1])
        size = int(runner.get_input_details()["pixels"]["shape"][1])
    except (ValueError, RuntimeError, OSError) as err:
        raise ValueError(
            f"--tflite={path} is not a model exported by `python -m rarl_tf.export.tflite` "
            f"({_first_line(err)}): export it again from its --model_dir"
        ) from None
    return size, _read_labels(labels, classes)


def _read_labels(labels: str, classes: int) -> list[str]:
    try:
        with open(labels, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the labels file {labels} ({err})") from None
    if len(names) != classes:
        raise ValueError(
            f"{labels} names {len(names)} classes, but the model beside it scores {classes}: "
            f"use the .labels.txt written with that .tflite by `python -m rarl_tf.export.tflite`"
        )
    return names


def has_int8_tensors(path: str) -> bool:
    """Whether the model computes in int8 anywhere (an int8 export; its inputs and outputs
    stay float32)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=path).get_tensor_details()
    return any(np.dtype(d["dtype"]) == np.int8 for d in details)


def probe_inputs(details: dict) -> list[dict]:
    """Fixed inputs of the signature's shapes: seeded uniform [0, 255], then all zeros (an
    all-black image: ties in every arg-max, where two tie rules part)."""
    rng = np.random.default_rng(0)
    shapes = {n: ([int(s) for s in d["shape"]], np.dtype(d["dtype"])) for n, d in details.items()}
    noise = {n: rng.uniform(0, 255, shape).astype(dtype) for n, (shape, dtype) in shapes.items()}
    black = {n: np.zeros(shape, dtype) for n, (shape, dtype) in shapes.items()}
    return [noise, black]


def largest_difference(gpu, cpu, inputs: list[dict]) -> tuple[str, float]:
    """(output name, max |gpu - cpu|) of the output that differs most over `inputs`
    (NaN counts as infinitely far)."""
    worst = ("", 0.0)
    for arrays in inputs:
        got, want = gpu(**arrays), cpu(**arrays)
        for name in want:
            diff = np.abs(got[name].astype(np.float64) - want[name].astype(np.float64))
            value = float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0
            if value > worst[1] or not worst[0]:
                worst = (name, value)
    return worst


def compile_model(path: str, accelerator: str = "cpu", precision: str = "fp32"):
    """(CompiledModel, "cpu" | "gpu") for the .tflite file at `path`.

    accelerator "cpu": the CPU; "gpu": the GPU only, every op on it, its outputs on the probe
    inputs equal to the CPU's within TOLERANCES[precision] (ValueError in one line otherwise);
    "auto": the GPU where it is usable and agrees with the CPU, else the CPU with a warning
    on stderr.
    """
    _check_choice("accelerator", accelerator, ACCELERATORS)
    _check_choice("gpu_precision", precision, PRECISIONS)
    if accelerator == "cpu":
        return compile_on(path, "cpu"), "cpu"
    model, problem = _checked_gpu_model(path, accelerator == "gpu", precision)
    if problem is None:
        return model, "gpu"
    if accelerator == "gpu":
        raise ValueError(
            f"--accelerator=gpu: {problem}: use --accelerator=cpu or --accelerator=auto"
        )
    print(
        f"warning: --accelerator=auto: {problem}; running on the CPU", file=sys.stderr, flush=True
    )
    return compile_on(path, "cpu"), "cpu"


def _checked_gpu_model(path: str, whole: bool, precision: str):
    """(GPU model or None, None or one line saying why it is not to be used). The GPU is
    compiled in this process only after a trial process ran the whole check and exited clean."""
    if has_int8_tensors(path):
        # Measured 2026-11-30 (ai-edge-litert 2.3, SwiftShader): int8 exports with an LSTM
        # (every recipe) kill the process with SIGSEGV at their first GPU run (20 of 20 runs
        # of one export; not every export every time); the check must not be that run.
        return None, (
            f"{path} is an int8 export, which LiteRT's GPU accelerator crashes on "
            f"(a segmentation fault with the recipes' LSTM): export with "
            f"--quantization=none or float16 for the GPU"
        )
    problem = gpu_trial(path, whole, precision)
    if problem is not None:
        return None, problem
    try:
        return compile_on(path, "gpu+cpu", precision), None
    except RuntimeError as err:  # the trial compiled it: a device that comes and goes
        return None, f"{NO_GPU}: LiteRT could not compile {path} for a GPU ({_first_line(err)})"


def gpu_problem(path: str, whole: bool, precision: str) -> str | None:
    """None where `path` compiles on the GPU (every op on it if `whole`) and computes the probe
    inputs as the CPU does; else one line why. Run by the trial process (`gpu_trial`)."""
    try:
        model = compile_on(path, "gpu+cpu", precision)
    except RuntimeError as err:
        return f"{NO_GPU}: LiteRT could not compile {path} for a GPU ({_first_line(err)})"
    if whole and not model.is_fully_accelerated():
        return (
            f"{path} is not fully accelerated on the GPU (check it with "
            f"`python -m rarl_tf.export.gpu_rules {path}`)"
        )
    try:
        return _disagreement(path, model, precision)
    except RuntimeError as err:  # e.g. LiteRT's code 7 (a timeout) reading a slow GPU's output
        return f"the GPU run of {path} failed on the probe input ({_first_line(err)})"


def trial_command(path: str, whole: bool, precision: str) -> list[str]:
    """The trial process's command line (`gpu_problem` of `path`, its answer as JSON)."""
    scope = "whole" if whole else "partial"
    return [sys.executable, "-m", "rarl_tf.inference.litert", path, scope, precision]


def gpu_trial(path: str, whole: bool, precision: str) -> str | None:
    """`gpu_problem` run in a child process, so that a GPU driver that crashes LiteRT (at the
    compile, the run or the process's exit) takes down the child, not this process; None where
    the child found the GPU usable and exited clean, else one line naming the device."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    try:
        child = subprocess.run(
            trial_command(path, whole, precision),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TRIAL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return (
            f"{NO_GPU}: the GPU trial of {path} did not finish in {TRIAL_TIMEOUT_S} s "
            f"({vulkan_drivers()})"
        )
    lines = child.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    problem = answer.get("problem") if isinstance(answer, dict) else None
    details = "; ".join(filter(None, [adapter_reason(child.stderr), vulkan_drivers()]))
    if child.returncode == 0 and isinstance(answer, dict):
        # LiteRT's own error is a source line; the adapter's log says what the device lacks.
        return f"{problem} [{details}]" if problem and problem.startswith(NO_GPU) else problem
    return (
        f"{NO_GPU}: LiteRT's GPU accelerator {_ending(child.returncode)} in a trial run of "
        f"{path} ({problem + '; ' if problem else ''}{details})"
    )


def _ending(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"crashed ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"crashed (signal {-returncode})"
    return f"failed (exit status {returncode})"


def adapter_reason(log: str) -> str:
    """What LiteRT's and Dawn's log lines say about the GPU adapter, in one line: why none
    was found (Dawn's "Warning: ..." lines), the WebGPU error, and the crash's own line."""
    found = []
    for line in log.splitlines():
        line = line.strip()
        if line.startswith("Warning: "):  # Dawn, per adapter: "Vulkan ... required"
            found.append(line[len("Warning: ") :].rstrip("."))
        elif "Failed to initialize WebGPU environment: " in line:
            found.append(line.split("Failed to initialize WebGPU environment: ")[-1])
        elif line.startswith(("free(): ", "double free", "munmap_chunk(): ", "Selected adapter")):
            found.append(line)
    return "; ".join(dict.fromkeys(found))


def vulkan_drivers() -> str:
    """The Vulkan drivers the loader offers this process, in words (VK_ICD_FILENAMES, else
    the standard folders): the devices a GPU that cannot be used comes from."""
    listed = os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES")
    if listed:
        files = [f for f in listed.split(os.pathsep) if f]
        where = "VK_ICD_FILENAMES"
    else:
        files = sorted(f for folder in ICD_FOLDERS for f in glob.glob(f"{folder}/*.json"))
        where = ", ".join(folder for folder in ICD_FOLDERS if os.path.isdir(folder))
    if not files:
        return "no Vulkan driver installed"
    names = [os.path.basename(f).split(".")[0].removesuffix("_icd") for f in files]
    return f"Vulkan drivers: {', '.join(names)} (from {where})"


def _disagreement(path: str, model, precision: str) -> str | None:
    """None where the GPU model's outputs on the probe inputs equal the CPU's within the
    tolerance; else one line naming the largest difference."""
    gpu = CompiledRunner.of(model)
    cpu = CompiledRunner.of(compile_on(path, "cpu"))
    name, diff = largest_difference(gpu, cpu, probe_inputs(cpu.inputs))
    tolerance = TOLERANCES[precision]
    if diff <= tolerance:
        return None
    return (
        f"the GPU computes {path} wrongly: on the probe input its output {name!r} differs "
        f"from the CPU's by {diff:.3g} (> {tolerance:g} allowed at --gpu_precision="
        f"{precision})"
    )


class CompiledRunner:
    """Calls the model's signature with numpy arrays: runner(pixels=x) -> {name: array}."""

    def __init__(
        self,
        path: str,
        accelerator: str = "cpu",
        signature: str = SIGNATURE,
        precision: str = "fp32",
    ):
        model, device = compile_model(path, accelerator, precision)
        self._bind(model, device, signature)

    @classmethod
    def of(cls, model, device: str = "", signature: str = SIGNATURE) -> "CompiledRunner":
        """A runner around an already compiled model."""
        runner = cls.__new__(cls)
        runner._bind(model, device, signature)
        return runner

    def _bind(self, model, device: str, signature: str) -> None:
        self.model, self.device, self.signature = model, device, signature
        self.inputs = model.get_input_tensor_details(signature)
        self.outputs = model.get_output_tensor_details(signature)
        self._in = {
            name: model.create_input_buffer_by_name(signature, name) for name in self.inputs
        }
        self._out = {
            name: model.create_output_buffer_by_name(signature, name) for name in self.outputs
        }

    def input_shape(self, name: str) -> list[int]:
        return list(self.inputs[name]["shape"])

    def __call__(self, **arrays) -> dict[str, np.ndarray]:
        for name, array in arrays.items():
            dtype = np.dtype(self.inputs[name]["dtype"])
            self._in[name].write(np.ascontiguousarray(array, dtype=dtype))
        self.model.run_by_name(self.signature, self._in, self._out)
        result = {}
        for name, details in self.outputs.items():
            shape = [int(d) for d in details["shape"]]
            dtype = np.dtype(details["dtype"])
            result[name] = self._out[name].read(int(np.prod(shape)), dtype).reshape(shape)
        return result


def _trial_main(argv: list[str]) -> None:
    """The GPU trial process: `gpu_problem` of argv's model, printed as one JSON line after
    LiteRT's own stdout chatter (sent to stderr)."""
    path, scope, precision = argv[1:4]
    with _stdout_to_stderr():
        problem = gpu_problem(path, scope == "whole", precision)
    print(json.dumps({"problem": problem}), flush=True)


if __name__ == "__main__":
    _trial_main(sys.argv)
