"""Runs an exported .tflite model through LiteRT's `CompiledModel` on the CPU or the GPU.

`ai_edge_litert`'s classic `Interpreter` runs on the CPU only (XNNPACK); a GPU is reached
through `CompiledModel` with `HardwareAccelerator.GPU` (ML Drift on WebGPU in ai-edge-litert
2.3). `is_fully_accelerated()` says where the ops ran, not whether they computed right (an
accelerator has run this project's graph to garbage with every op on it), so a GPU model is
checked at load: a fixed probe input runs on the GPU and on the CPU, and the outputs must
agree within the precision's tolerance. Imports neither TensorFlow nor the rest of the project.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

ACCELERATORS = ("cpu", "gpu", "auto")
# fp32: the GPU computes in float32 (GpuOptions.enforce_f32); fp16: in float16 where the
# device supports it (ML Drift's default), else float32.
PRECISIONS = ("fp32", "fp16")
# Largest |GPU - CPU| on any output of the probe that counts as agreement. fp32 measured
# <= 1e-7 on SwiftShader (docs/deployment_gpu.md); fp16 keeps ~3 significant digits.
TOLERANCES = {"fp32": 1e-3, "fp16": 1e-2}
SIGNATURE = "serving_default"


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
    """(GPU model or None, None or one line saying why it is not to be used)."""
    if has_int8_tensors(path):
        # Measured 2026-11-30 (ai-edge-litert 2.3, SwiftShader): int8 exports with an LSTM
        # (every recipe) kill the process with SIGSEGV at their first GPU run (20 of 20 runs
        # of one export; not every export every time); the check must not be that run.
        return None, (
            f"{path} is an int8 export, which LiteRT's GPU accelerator crashes on "
            f"(a segmentation fault with the recipes' LSTM): export with "
            f"--quantization=none or float16 for the GPU"
        )
    try:
        model = compile_on(path, "gpu+cpu", precision)
    except RuntimeError as err:
        return None, f"no usable GPU ({_first_line(err)}): LiteRT could not run {path} on a GPU"
    if whole and not model.is_fully_accelerated():
        return None, (
            f"{path} is not fully accelerated on the GPU (check it with "
            f"`python -m export.gpu_rules {path}`)"
        )
    try:
        return model, _disagreement(path, model, precision)
    except RuntimeError as err:  # e.g. LiteRT's code 7 (a timeout) reading a slow GPU's output
        return None, f"the GPU run of {path} failed on the probe input ({_first_line(err)})"


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
