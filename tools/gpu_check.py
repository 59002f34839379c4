"""Runs an exported .tflite model on a real GPU through LiteRT and checks it against the CPU.

    python tools/gpu_check.py exported/rarl.tflite [--runs=50] [--atol=0.01] [--seed=0]

Needs nothing but this file, the .tflite, numpy and ai-edge-litert (no TensorFlow, nothing else
of the project), so it runs on a GPU machine that has only those:

    pip install numpy ai-edge-litert==2.3.0 && python gpu_check.py rarl.tflite

What it does:
1. compiles the model with `CompiledModel` on the CPU and runs it on random inputs (seeded)
   of the signature's shapes and types, timing `--runs` calls after a warm-up;
2. compiles it with `HardwareAccelerator.GPU` (the GPU only), asserts
   `is_fully_accelerated()`, runs the same inputs, compares every output with the CPU's
   (max |GPU - CPU| <= --atol; the GPU may compute in float16) and times it;
3. prints a table of both and exits 0; exit 1 if the GPU run is not fully accelerated or its
   outputs differ; exit 2, with one error line, where LiteRT finds no usable GPU (a CPU-only
   machine), after printing the CPU part.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

SIGNATURE = "serving_default"


class Runner:
    """A compiled model's signature called with numpy arrays."""

    def __init__(self, path: str, accelerator):
        from ai_edge_litert.compiled_model import CompiledModel

        self.model = CompiledModel.from_file(path, hardware_accel=accelerator)
        self.inputs = self.model.get_input_tensor_details(SIGNATURE)
        self.outputs = self.model.get_output_tensor_details(SIGNATURE)
        self._in = {n: self.model.create_input_buffer_by_name(SIGNATURE, n) for n in self.inputs}
        self._out = {n: self.model.create_output_buffer_by_name(SIGNATURE, n)
                     for n in self.outputs}

    def __call__(self, arrays: dict) -> dict:
        for name, array in arrays.items():
            self._in[name].write(np.ascontiguousarray(array))
        self.model.run_by_name(SIGNATURE, self._in, self._out)
        result = {}
        for name, details in self.outputs.items():
            shape = [int(d) for d in details["shape"]]
            result[name] = self._out[name].read(int(np.prod(shape)),
                                                np.dtype(details["dtype"])).reshape(shape)
        return result


def random_inputs(details: dict, seed: int) -> dict:
    """Inputs of the signature's shapes and types: uniform in [0, 255] (pixels) for floats."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, d in details.items():
        shape, dtype = [int(s) for s in d["shape"]], np.dtype(d["dtype"])
        if dtype.kind == "f":
            arrays[name] = rng.uniform(0, 255, shape).astype(dtype)
        else:
            arrays[name] = rng.integers(0, 255, shape).astype(dtype)
    return arrays


def timed(run, inputs: dict, runs: int) -> tuple[dict, float]:
    """(outputs of the first call, median seconds per call over `runs` calls after 3 warm-ups)."""
    first = run(inputs)
    for _ in range(2):
        run(inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def _first_line(err: Exception) -> str:
    lines = [line.strip(" └") for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tflite", help="the exported model (python -m export.tflite)")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per device")
    parser.add_argument("--atol", type=float, default=1e-2,
                        help="largest |GPU - CPU| allowed on any output")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    args = parser.parse_args(argv)
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    cpu = Runner(args.tflite, HardwareAccelerator.CPU)
    inputs = random_inputs(cpu.inputs, args.seed)
    cpu_out, cpu_s = timed(cpu, inputs, args.runs)
    print(f"model {args.tflite}; inputs "
          + ", ".join(f"{n} {list(a.shape)} {a.dtype}" for n, a in inputs.items()))
    print(f"cpu: {cpu_s * 1e3:.2f} ms per call (median of {args.runs})")
    try:
        gpu = Runner(args.tflite, HardwareAccelerator.GPU)
    except RuntimeError as err:
        print(f"error: LiteRT found no usable GPU here ({_first_line(err)}): this check needs "
              f"a machine with a GPU", file=sys.stderr)
        return 2
    fully = gpu.model.is_fully_accelerated()
    print(f"gpu: is_fully_accelerated() = {fully}")
    if not fully:
        print("error: the model is not fully accelerated on the GPU", file=sys.stderr)
        return 1
    gpu_out, gpu_s = timed(gpu, inputs, args.runs)
    print(f"gpu: {gpu_s * 1e3:.2f} ms per call (median of {args.runs}); "
          f"cpu / gpu = {cpu_s / gpu_s:.2f}")
    worst = 0.0
    for name in cpu_out:
        diff = float(np.abs(gpu_out[name].astype(np.float64)
                            - cpu_out[name].astype(np.float64)).max())
        worst = max(worst, diff)
        print(f"  {name}: max |gpu - cpu| = {diff:.2e}")
    if worst > args.atol:
        print(f"error: GPU outputs differ from the CPU's by {worst:.2e} > --atol={args.atol}",
              file=sys.stderr)
        return 1
    print("ok: fully accelerated on the GPU, outputs equal the CPU's within "
          f"{args.atol}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
