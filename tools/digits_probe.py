"""What a cluttered_digits config leaves a location policy to do, before any model is trained.

    python -m tools.digits_probe --config=repeats --glimpses=3 --image_size=64

Draws canvases with the dataset's own generator (no TensorFlow) and prints one table: digits
and classes per canvas, each digit's side in view pixels at --image_size, the share of the
view the digits cover (what a random centre lands on), and the share of each canvas's classes
found by --glimpses glimpses under three idealised policies:

* random centres: a class counts as found when a centre falls inside one of its digits;
* class-blind aim: each glimpse on a different digit, chosen without regard to class (a perfect
  saliency map with inhibition of return);
* class-aware aim (memory): each glimpse on a digit of a class not yet seen while one is left.

These bound what placement can give; they say nothing about what a model learns.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from rarl_tf import cli
from rarl_tf.data import cluttered_digits as cd

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "repeats", "cluttered_digits builder config to draw from.")
flags.DEFINE_integer("glimpses", 3, "Glimpses per canvas (T).")
flags.DEFINE_integer("image_size", 64, "N: the side, in pixels, the canvas is resized to.")
flags.DEFINE_integer("canvases", 2000, "Canvases to draw (from the test pool).")
flags.DEFINE_integer("seed", 0, "Seed of the draws (the policies' choices too).")
flags.DEFINE_string("output", None, "Optional JSON file for the table's figures.")


def draw(config: cd.ClutteredDigitsConfig, count: int, seed: int) -> list[dict]:
    """`count` canvases of `config` from the test pool (the generator's own code)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    glyphs, targets = digits.images / 16.0, digits.target
    pool = cd.source_pools(config.seed)["test"]
    rng = np.random.default_rng([seed, 1])
    plan = cd.canvas_plan(config)
    return [
        cd.make_canvas(
            rng, glyphs, targets, pool, config.canvas_size, config.max_digits,
            config.long_sides, plan,
        )
        for _ in range(count)
    ]  # fmt: skip


def classes_found(labels: np.ndarray, picked: list[int]) -> float:
    """The share of the canvas's classes among the digits at indices `picked`."""
    return len(set(labels[picked].tolist())) / len(set(labels.tolist()))


def policies(objects: dict, glimpses: int, rng: np.random.Generator) -> dict[str, float]:
    """Classes found by random centres, class-blind aim and class-aware aim on one canvas."""
    boxes, labels = objects["bbox"], objects["label"]
    centres = rng.uniform(0.0, 1.0, size=(glimpses, 2))
    inside = [
        i
        for i, (y1, x1, y2, x2) in enumerate(boxes)
        for cy, cx in centres
        if y1 <= cy <= y2 and x1 <= cx <= x2
    ]
    blind = rng.permutation(len(labels))[:glimpses].tolist()
    aware, seen = [], set()
    for index in rng.permutation(len(labels)):
        if len(aware) < glimpses and (labels[index] not in seen or len(seen) == len(set(labels))):
            aware.append(int(index))
            seen.add(labels[index])
    return {
        "random centres": classes_found(labels, inside) if inside else 0.0,
        "class-blind aim": classes_found(labels, blind),
        "class-aware aim": classes_found(labels, aware),
    }


def probe(name: str, glimpses: int, image_size: int, count: int, seed: int) -> dict:
    """The figures of the table for config `name`."""
    config = next(c for c in cd.ClutteredDigits.BUILDER_CONFIGS if c.name == name)
    canvases = draw(config, count, seed)
    rng = np.random.default_rng(seed)
    found = [policies(c["objects"], glimpses, rng) for c in canvases]
    boxes = [c["objects"]["bbox"] for c in canvases]
    sides = np.concatenate([np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in boxes])
    areas = [np.sum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])) for b in boxes]
    result = {
        "config": name,
        "glimpses": glimpses,
        "image_size": image_size,
        "canvases": count,
        "digits per canvas": float(np.mean([len(b) for b in boxes])),
        "classes per canvas": float(np.mean([c["labels"].sum() for c in canvases])),
        "digit side, view px (median)": float(np.median(sides) * image_size),
        "view covered by digits": float(np.mean(areas)),
    }
    for policy in found[0]:
        result[f"classes found: {policy}"] = float(np.mean([f[policy] for f in found]))
    return result


def main(argv):
    cli.no_arguments(argv)
    known = [c.name for c in cd.ClutteredDigits.BUILDER_CONFIGS]
    if FLAGS.config not in known:
        raise ValueError(f"--config={FLAGS.config} is not allowed: expected one of {known}")
    if FLAGS.glimpses < 1 or FLAGS.canvases < 1 or FLAGS.image_size < 1:
        raise ValueError("--glimpses, --canvases and --image_size: expected integers >= 1")
    result = probe(FLAGS.config, FLAGS.glimpses, FLAGS.image_size, FLAGS.canvases, FLAGS.seed)
    print("| figure | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    if FLAGS.output:
        from rarl_tf import atomic

        atomic.write_json(FLAGS.output, result)


if __name__ == "__main__":
    app.run(cli.user_errors_exit(main), flags_parser=cli.parse_flags)
