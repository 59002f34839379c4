"""Runs .tflite models through LiteRT's CompiledModel on the GPU only and on the CPU, in a
process of its own (the GPU device is chosen from VK_ICD_FILENAMES when LiteRT loads).

    python tests/litert_worker.py SPEC.json

SPEC: {"models": [{"path", "precision"}], "images": IMAGES.npz (pixels [n, 1, N, N, 3] per
model index, key "m<i>"), "output": OUT.npz}. Writes, per model i and device d in (gpu, cpu),
"m<i>.<d>.<output name>" stacked over the images, and "m<i>.fully" (is_fully_accelerated()
of the GPU compile). Imports no TensorFlow.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rarl_tf.inference.litert import CompiledRunner, compile_on  # noqa: E402


def run_all(runner, images) -> dict:
    outs = [runner(pixels=image) for image in images]
    return {name: np.stack([o[name] for o in outs]) for name in outs[0]}


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    images = np.load(spec["images"])
    results = {}
    for i, model in enumerate(spec["models"]):
        pixels = images[f"m{i}"]
        gpu = CompiledRunner.of(compile_on(model["path"], "gpu", model["precision"]), "gpu")
        results[f"m{i}.fully"] = np.asarray(gpu.model.is_fully_accelerated())
        cpu = CompiledRunner.of(compile_on(model["path"], "cpu"), "cpu")
        for device, runner in (("gpu", gpu), ("cpu", cpu)):
            for name, value in run_all(runner, pixels).items():
                results[f"m{i}.{device}.{name}"] = value
    np.savez(spec["output"], **results)


if __name__ == "__main__":
    main(sys.argv[1])
