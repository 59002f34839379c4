"""Runs an exported .tflite model on a GPU through LiteRT and checks it against the CPU.

    python tools/gpu_check.py exported/rarl.tflite [--images=test.npy] [--random=8]
        [--precision=fp32] [--atol=1e-3] [--runs=50] [--seed=0] [--json=out.json]

Needs nothing but this file, the .tflite, numpy and ai-edge-litert (no TensorFlow, nothing else
of the project), so it runs on a GPU machine that has only those:

    pip install numpy ai-edge-litert==2.3.0 && python gpu_check.py rarl.tflite

What it does:
1. compiles the model with `CompiledModel` on the CPU, and with `HardwareAccelerator.GPU` (the
   GPU only; --precision fp32 enforces float32, fp16 lets the device use float16 where it
   supports it) and asserts `is_fully_accelerated()` (which says where ops ran, not whether
   they are right);
2. runs both on --random seeded random inputs, an all-black and an all-white image, and the
   real images of --images (a .npy of [count, N, N, 3] float32 pixels, e.g. written by
   `python -m tools.split_images`); per output, max |GPU - CPU|; on the `scores` output, how
   many images' top-1 class differs;
3. times --runs calls of each device on one input. Where the GPU is a software device
   (SwiftShader, as VK_ICD_FILENAMES names it), its time is labelled: it is not a GPU speed;
4. prints a table (and --json writes it) and exits 0 when every max |GPU - CPU| <= --atol and
   no top-1 differs; exit 1 if not, or if the GPU run is not fully accelerated; exit 2, with
   one error line, where LiteRT finds no usable GPU (a CPU-only machine), after the CPU part.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

SIGNATURE = "serving_default"
DEFAULT_ATOL = {"fp32": 1e-3, "fp16": 1e-2}


class Runner:
    """A compiled model's signature called with numpy arrays."""

    def __init__(self, path: str, gpu: bool, precision: str = "fp32"):
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import CpuOptions, GpuOptions, Options

        options = Options(
            hardware_accelerators=HardwareAccelerator.GPU if gpu else HardwareAccelerator.CPU,
            cpu_options=CpuOptions(num_threads=1),
            gpu_options=GpuOptions(enforce_f32=precision == "fp32"),
        )
        self.model = CompiledModel.from_file(path, options=options)
        self.inputs = self.model.get_input_tensor_details(SIGNATURE)
        self.outputs = self.model.get_output_tensor_details(SIGNATURE)
        self._in = {n: self.model.create_input_buffer_by_name(SIGNATURE, n) for n in self.inputs}
        self._out = {n: self.model.create_output_buffer_by_name(SIGNATURE, n) for n in self.outputs}

    def __call__(self, arrays: dict) -> dict:
        for name, array in arrays.items():
            self._in[name].write(np.ascontiguousarray(array))
        self.model.run_by_name(SIGNATURE, self._in, self._out)
        result = {}
        for name, details in self.outputs.items():
            shape = [int(d) for d in details["shape"]]
            result[name] = (
                self._out[name].read(int(np.prod(shape)), np.dtype(details["dtype"])).reshape(shape)
            )
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


def image_inputs(path: str, details: dict) -> list[dict]:
    """The images of a .npy [count, N, N, 3] as inputs of the one-input signature."""
    ((name, d),) = details.items()
    shape = [int(s) for s in d["shape"]]
    images = np.load(path)
    if images.ndim != 4 or list(images.shape[1:]) != shape[1:]:
        raise ValueError(
            f"--images={path} holds an array of shape {list(images.shape)}: "
            f"expected [count, {', '.join(map(str, shape[1:]))}] (the model's "
            f"input {name!r} without its batch of 1)"
        )
    return [{name: image[None].astype(d["dtype"])} for image in images]


def check_inputs(details: dict, count: int, seed: int, images: str | None) -> dict:
    """{kind: [inputs, ...]}: "random" (seeded), "constant" (all 0, all 255), "images"."""
    kinds = {
        "random": [random_inputs(details, seed + i) for i in range(count)],
        "constant": [
            {
                n: np.full([int(s) for s in d["shape"]], v, np.dtype(d["dtype"]))
                for n, d in details.items()
            }
            for v in (0, 255)
        ],
    }
    if images:
        kinds["images"] = image_inputs(images, details)
    return kinds


def compare(gpu, cpu, inputs: list[dict]) -> dict:
    """Per output max |GPU - CPU| (NaN counts as inf) and, on `scores`, top-1 disagreements."""
    diffs, disagree = {}, 0
    for arrays in inputs:
        got, want = gpu(arrays), cpu(arrays)
        for name in want:
            diff = np.abs(got[name].astype(np.float64) - want[name].astype(np.float64))
            diffs[name] = max(diffs.get(name, 0.0), float(np.nan_to_num(diff, nan=np.inf).max()))
        if "scores" in want:
            disagree += int(np.any(got["scores"].argmax(-1) != want["scores"].argmax(-1)))
    return {"count": len(inputs), "max_abs_diff": diffs, "top1_disagreements": disagree}


def timed(run, inputs: dict, runs: int) -> float:
    """Median seconds per call over `runs` calls after 3 warm-ups."""
    for _ in range(3):
        run(inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def software_device() -> str | None:
    """The software Vulkan device VK_ICD_FILENAMES selects, if any (its speed is a CPU's)."""
    icd = os.environ.get("VK_ICD_FILENAMES", "").lower()
    for marker, name in (("swiftshader", "SwiftShader"), ("lvp", "lavapipe")):
        if marker in icd:
            return name
    return None


def _first_line(err: Exception) -> str:
    lines = [line.strip(" └") for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


@contextlib.contextmanager
def _native_stderr_kept(kept: list):
    """File descriptor 2 sent to a temporary file for the block; its text is appended to
    `kept`. Mesa's Vulkan drivers print their own `error: XDG_RUNTIME_DIR is invalid ...`
    lines there when LiteRT looks for a GPU, which would read as this tool's errors."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept.append(captured.read().decode("utf-8", "replace"))


def _dawn_reason(log: str) -> str:
    """Dawn's own words for a refused adapter ("Warning: Vulkan ... required"), if any."""
    lines = [line.strip() for line in log.splitlines()]
    warned = (line[len("Warning: ") :] for line in lines if line.startswith("Warning: "))
    return "; ".join(dict.fromkeys(warned))


def check(args, cpu) -> tuple[dict, int]:
    """The GPU part: (report, exit status)."""
    report = {"precision": args.precision, "atol": args.atol}
    log: list = []
    try:
        with _native_stderr_kept(log):
            gpu = Runner(args.tflite, gpu=True, precision=args.precision)
    except RuntimeError as err:
        reason = _dawn_reason("".join(log))
        print(
            f"error: LiteRT found no usable GPU here ({_first_line(err)}"
            f"{'; ' + reason if reason else ''}): this check needs a machine with a GPU",
            file=sys.stderr,
        )
        return report, 2
    sys.stderr.write("".join(log))  # e.g. LiteRT's "Selected adapter" line
    report["fully_accelerated"] = bool(gpu.model.is_fully_accelerated())
    print(f"gpu: is_fully_accelerated() = {report['fully_accelerated']}")
    if not report["fully_accelerated"]:
        print("error: the model is not fully accelerated on the GPU", file=sys.stderr)
        return report, 1
    kinds = check_inputs(cpu.inputs, args.random, args.seed, args.images)
    try:
        report["inputs"] = {kind: compare(gpu, cpu, inputs) for kind, inputs in kinds.items()}
    except RuntimeError as err:  # e.g. LiteRT's code 7: a timeout reading a slow GPU's output
        print(f"error: the GPU run failed ({_first_line(err)})", file=sys.stderr)
        report["error"] = _first_line(err)
        return report, 1
    report["gpu_ms"] = timed(gpu, kinds["random"][0], args.runs) * 1e3
    device = software_device()
    report["gpu_timing_note"] = (
        f"software Vulkan device ({device}) running on the CPU: not a GPU speed"
        if device
        else "the GPU LiteRT selected"
    )
    print(
        f"gpu: {report['gpu_ms']:.2f} ms per call (median of {args.runs}; "
        f"{report['gpu_timing_note']})"
    )
    return report, _verdict(report, args.atol)


def _verdict(report: dict, atol: float) -> int:
    status = 0
    for kind, result in report["inputs"].items():
        for name, diff in result["max_abs_diff"].items():
            print(f"  {kind} ({result['count']}): {name}: max |gpu - cpu| = {diff:.2e}")
            if diff > atol:
                print(
                    f"error: on {kind} inputs, GPU output {name!r} differs from the CPU's by "
                    f"{diff:.2e} > --atol={atol}",
                    file=sys.stderr,
                )
                status = 1
        print(f"  {kind} ({result['count']}): top-1 differs on {result['top1_disagreements']}")
        if result["top1_disagreements"]:
            print(
                f"error: on {kind} inputs, the GPU's top-1 class differs from the CPU's on "
                f"{result['top1_disagreements']} of {result['count']}",
                file=sys.stderr,
            )
            status = 1
    if status == 0:
        print(
            f"ok: fully accelerated on the GPU, outputs equal the CPU's within {atol} and "
            f"every top-1 class agrees"
        )
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tflite", help="the exported model (python -m rarl_tf.export.tflite)")
    parser.add_argument("--images", help=".npy of [count, N, N, 3] float32 real images")
    parser.add_argument("--random", type=int, default=8, help="how many random inputs")
    parser.add_argument(
        "--precision",
        choices=sorted(DEFAULT_ATOL),
        default="fp32",
        help="GPU arithmetic: fp32 enforced, or fp16 where supported",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=None,
        help="largest |GPU - CPU| allowed on any output (default: 1e-3 at fp32, 1e-2 at fp16)",
    )
    parser.add_argument("--runs", type=int, default=50, help="timed calls per device")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--json", help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    args.atol = DEFAULT_ATOL[args.precision] if args.atol is None else args.atol
    if args.random < 1:
        parser.error(f"--random={args.random}: expected an integer >= 1")
    cpu = Runner(args.tflite, gpu=False)
    cpu_ms = timed(cpu, random_inputs(cpu.inputs, args.seed), args.runs) * 1e3
    print(
        f"model {args.tflite}; inputs "
        + ", ".join(f"{n} {list(d['shape'])} {np.dtype(d['dtype'])}" for n, d in cpu.inputs.items())
    )
    print(f"cpu: {cpu_ms:.2f} ms per call (median of {args.runs})")
    try:
        report, status = check(args, cpu)
    except ValueError as err:  # a bad --images file
        print(f"error: {err}", file=sys.stderr)
        return 2
    report.update(model=args.tflite, cpu_ms=cpu_ms, exit_status=status)
    if args.json:
        temporary = f"{args.json}.partial"
        with open(temporary, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(temporary, args.json)
    return status


if __name__ == "__main__":
    sys.exit(main())
