"""What a recipe's training step costs, part by part: time and peak memory, recipes side by side.

    nice -n 10 python -m tools.recipe_cost --recipes=voc_paper.flags,voc.flags \
        --output=results/recipe_cost_2026-11-30.json

Each recipe is measured in a process of its own (its peak resident memory is its own), at its
own N with VGG16 (random weights: cost does not depend on them), on a batch of --batch random
training crops, through `tools/step_breakdown.py`'s parts and the whole `train_step`. Per part:
the median wall and CPU seconds (the process's, all threads: less moved than wall time by other
processes on a shared machine) of --repeats runs after --warmup, and the peak of TensorFlow's
CPU allocator
over those runs above what was allocated before them (`tf.config.experimental.
get_memory_info`: tensors only, not the interpreter or the graphs). The recipes alternate for
--rounds rounds (A B, then B A, ...), so a machine whose load drifts slows both alike; the
ratios to the first recipe are taken within each round, and their median is reported.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

from rarl_tf import atomic, cli

FLAGS = flags.FLAGS
MB = 2.0**20


def _built_model(config, m, num_classes: int):
    """The recipe's model (config `m`) with seeded random weights, compiled with the recipe's
    optimizer and that optimizer's slots already built, so the timed steps do not create them."""
    import keras

    from rarl_tf.model import optimizer as optimizer_lib
    from rarl_tf.model.factory import build_model

    keras.utils.set_random_seed(0)
    model = build_model(m, num_classes, seed=0)
    model.compile(
        optimizer=optimizer_lib.adam(config.train, config.train.learning_rate), jit_compile=False
    )
    model.optimizer.build(model.trainable_variables)
    return model


def _random_batch(batch: int, side: int, num_classes: int):
    """Seeded random training crops (a float32 tensor, `batch` x `side` x `side` x 3) and a
    multi-hot label array for them."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (batch, side, side, 3)).astype(np.float32))
    # One or two labels per image, as most VOC images have.
    labels = np.zeros((batch, num_classes), np.float32)
    for row in labels:
        row[rng.choice(num_classes, int(rng.integers(1, 3)), replace=False)] = 1.0
    return images, labels


def _timed(fn, repeats: int, warmup: int) -> dict:
    """The median wall and CPU seconds of `repeats` runs of fn() after `warmup` untimed ones,
    and the peak MB that TensorFlow's CPU allocator reached above what it held before."""
    import tensorflow as tf

    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    return {
        "seconds": statistics.median(wall),
        "cpu_seconds": statistics.median(cpu),
        "peak_mb": (peak - before) / MB,
    }


def measure_recipe(path: str, batch: int, repeats: int, warmup: int) -> dict:
    """One recipe's step, in this process: {"parts": {part: {"seconds", "peak_mb"}}, ...}."""
    import dataclasses

    import numpy as np
    import tensorflow as tf

    from rarl_tf.config.flags import experiment_config_from_flagfile
    from tools.step_breakdown import train_breakdown

    config = experiment_config_from_flagfile(path)
    m = dataclasses.replace(config.model, backbone_weights="none")
    num_classes = 20
    model = _built_model(config, m, num_classes)
    side = m.image_size - m.crop_margin
    images, labels = _random_batch(batch, side, num_classes)
    built_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    parts = train_breakdown(
        model, images, tf.constant(labels), lambda fn: _timed(fn, repeats, warmup)
    )
    return {
        "recipe": path,
        "image_size": m.image_size,
        "train_crop": side,
        "batch": batch,
        "params": int(model.count_params()),
        "policy_params": int(sum(np.prod(v.shape) for v in model.agent.policy.trainable_variables)),
        "parts": parts,
        "ru_maxrss_mb": {
            "after_build": built_rss,
            "end": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    }


def memory_estimate(result: dict, batch: int) -> dict:
    """An estimate (not a measurement) of a step's tensors at `batch` from one measured at
    `result["batch"]`: weights and Adam's two slots (3 x params x 4 bytes) stay, the gradients
    (params x 4 bytes) are in the measured step's peak and do not grow with the batch, the rest
    of that peak (activations kept for the gradient, temporaries) grows linearly."""
    params_mb = result["params"] * 4 / MB
    step_mb = result["parts"]["step"]["peak_mb"]
    per_image = max(step_mb - params_mb, 0.0) / result["batch"]
    total = 3 * params_mb + params_mb + per_image * batch
    return {
        "batch": batch,
        "mb": total,
        "per_image_mb": per_image,
        "arithmetic": f"3 x {params_mb:.0f} (weights, Adam m, v) + {params_mb:.0f} "
        f"(gradients) + {batch} x {per_image:.0f} (({step_mb:.0f} - "
        f"{params_mb:.0f}) / {result['batch']}) = {total:.0f} MB",
    }


def _child(path: str) -> dict:
    """`measure_recipe(path)` in a fresh process (its last stdout line is the JSON)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [
        sys.executable,
        "-m",
        "tools.recipe_cost",
        f"--one={path}",
        f"--batch={FLAGS.batch}",
        f"--repeats={FLAGS.repeats}",
        f"--warmup={FLAGS.warmup}",
    ]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise cli.RunFailed(f"measuring {path} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def ratios(rounds: list[dict], recipe: str, base: str) -> dict:
    """Median over rounds of recipe / base, per part, for seconds, cpu_seconds and peak_mb (None
    where the base's is 0)."""
    out = {}
    for part in rounds[0][base]["parts"]:
        out[part] = {}
        for key in ("seconds", "cpu_seconds", "peak_mb"):
            # A part whose peak is under the allocator's granularity reads 0: no ratio.
            values = [
                r[recipe]["parts"][part][key] / r[base]["parts"][part][key]
                for r in rounds
                if r[base]["parts"][part][key] > 0
            ]
            out[part][key] = statistics.median(values) if values else None
    return out


def main(argv):
    cli.no_arguments(argv)
    if FLAGS.one:
        print(json.dumps(measure_recipe(FLAGS.one, FLAGS.batch, FLAGS.repeats, FLAGS.warmup)))
        return
    recipes = FLAGS.recipes
    rounds = []
    for index in range(FLAGS.rounds):
        order = recipes if index % 2 == 0 else recipes[::-1]
        rounds.append({})
        for path in order:
            print(f"round {index + 1}: {path}", flush=True)
            rounds[-1][path] = _child(path)
            rounds[-1][path]["estimate_batch_16"] = memory_estimate(rounds[-1][path], 16)
            # Rewritten after every recipe: a run cut short keeps its complete rounds.
            complete = [r for r in rounds if len(r) == len(recipes)]
            results = {
                "command": "python -m tools.recipe_cost " + " ".join(sys.argv[1:]),
                "rounds": rounds,
                "complete_rounds": len(complete),
                "ratios_to_first": {p: ratios(complete, p, recipes[0]) for p in recipes[1:]}
                if complete
                else None,
            }
            atomic.write_json(FLAGS.output, results, 1)
    print(json.dumps(results["ratios_to_first"], indent=1))


if __name__ == "__main__":
    flags.DEFINE_list(
        "recipes",
        ["voc_paper.flags", "voc.flags"],
        "Flagfiles to compare; ratios are to the first.",
    )
    flags.DEFINE_integer("batch", 2, "Training batch of the measured step.")
    flags.DEFINE_integer("repeats", 2, "Timed runs per part (the median is reported).")
    flags.DEFINE_integer("warmup", 1, "Untimed runs first (tracing, caches).")
    flags.DEFINE_integer("rounds", 2, "Rounds of alternating measurements.")
    flags.DEFINE_string("output", "recipe_cost.json", "Where to write the JSON results.")
    flags.DEFINE_string("one", "", "Internal: measure this one recipe and print its JSON.")
    app.run(cli.user_errors_exit(main), flags_parser=cli.parse_flags)
