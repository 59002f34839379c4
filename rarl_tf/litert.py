"""Runs an exported .tflite model through LiteRT's `CompiledModel` on the CPU or the GPU.

`ai_edge_litert`'s classic `Interpreter` runs on the CPU only (XNNPACK); a GPU is reached
through `CompiledModel` with `HardwareAccelerator.GPU`. Imports neither TensorFlow nor the rest
of the project.
"""

from __future__ import annotations

import sys

import numpy as np

ACCELERATORS = ("cpu", "gpu", "auto")
SIGNATURE = "serving_default"


def _first_line(err: Exception) -> str:
    lines = [line.strip(" └") for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def compile_model(path: str, accelerator: str = "cpu"):
    """(CompiledModel, "cpu" | "gpu") for the .tflite file at `path`.

    accelerator "cpu": the CPU; "gpu": the GPU only, every op on it (ValueError in one line if
    LiteRT finds no usable GPU or the model is not fully accelerated); "auto": the GPU with the
    CPU for what it does not take, or the CPU alone with a warning on stderr when no GPU is
    usable.
    """
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    if accelerator not in ACCELERATORS:
        raise ValueError(f"--accelerator={accelerator} is not allowed: expected one of "
                         f"{', '.join(ACCELERATORS)}")
    if accelerator == "cpu":
        return CompiledModel.from_file(path, hardware_accel=HardwareAccelerator.CPU), "cpu"
    accel = (HardwareAccelerator.GPU if accelerator == "gpu"
             else HardwareAccelerator.GPU | HardwareAccelerator.CPU)
    try:
        model = CompiledModel.from_file(path, hardware_accel=accel)
    except RuntimeError as err:
        if accelerator == "gpu":
            raise ValueError(f"--accelerator=gpu: LiteRT could not run {path} on a GPU here "
                             f"({_first_line(err)}; no usable GPU?): use --accelerator=cpu or "
                             f"--accelerator=auto") from None
        print(f"warning: --accelerator=auto: no usable GPU ({_first_line(err)}); running on "
              f"the CPU", file=sys.stderr, flush=True)
        return CompiledModel.from_file(path, hardware_accel=HardwareAccelerator.CPU), "cpu"
    if accelerator == "gpu" and not model.is_fully_accelerated():
        raise ValueError(f"--accelerator=gpu: {path} is not fully accelerated on the GPU "
                         f"(check it with `python -m export.gpu_rules {path}`)")
    return model, "gpu"


class CompiledRunner:
    """Calls the model's signature with numpy arrays: runner(pixels=x) -> {name: array}."""

    def __init__(self, path: str, accelerator: str = "cpu", signature: str = SIGNATURE):
        self.model, self.device = compile_model(path, accelerator)
        self.signature = signature
        self.inputs = self.model.get_input_tensor_details(signature)
        self.outputs = self.model.get_output_tensor_details(signature)
        self._in = {name: self.model.create_input_buffer_by_name(signature, name)
                    for name in self.inputs}
        self._out = {name: self.model.create_output_buffer_by_name(signature, name)
                     for name in self.outputs}

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
