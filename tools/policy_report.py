"""Does the learned location policy beat random centres with the same weights?

    python -m tools.policy_report --model_dir=runs/digits --output=runs/digits/policy_report.json

Loads the model trained in --model_dir and measures, on the first --max_images test images of
cluttered_digits, the policy against test-time interventions on the state its head reads, with
inhibition of return off (or on), and against random centres, uniform and inhibited, all with
the same weights (mAP, visited cells kept, object
discovery per step and over the union of steps, distance between consecutive locations), how
often the reward depends on placement over --samples sampled trajectories, and the batch
signal-to-noise of the location head's REINFORCE gradient
(`rarl_tf/evaluation/policy_report.py`). Writes the JSON and a markdown file next to it, and
prints the table.

    python -m tools.policy_report \
        --compare=results/levers/recipe.json,results/levers/dense_head.json

prints one row per report already written (e.g. runs that differ by one setting) instead.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from rarl_tf import atomic, cli
from rarl_tf.config import flags as rarl_flags

FLAGS = flags.FLAGS


def compare(paths) -> None:
    from rarl_tf.evaluation.policy_report import comparison_markdown

    reports = {}
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--compare: {path} not found (a JSON written by this tool)")
        with open(path) as f:
            reports[os.path.splitext(os.path.basename(path))[0]] = json.load(f)
    print(comparison_markdown(reports))


def main(argv):
    cli.no_arguments(argv)
    if FLAGS.compare:
        return compare(FLAGS.compare)
    if not FLAGS.model_dir:
        raise ValueError("--model_dir is required (or --compare=REPORT.json,...)")
    if FLAGS.max_images < 1 or FLAGS.samples < 2:
        raise ValueError(
            f"--max_images={FLAGS.max_images} / --samples={FLAGS.samples}: expected "
            f"at least 1 image and 2 samples"
        )
    from rarl_tf.evaluation.policy_report import markdown, policy_report
    from rarl_tf.model_folder import load_trained

    model, config = load_trained(FLAGS.model_dir)
    if config.model.architecture != "rarl":
        raise ValueError(
            f"{FLAGS.model_dir} holds a {config.model.architecture!r} model: the "
            f"policy report needs an RARL model (architecture rarl)"
        )
    if not config.data.dataset.startswith("cluttered_digits"):
        raise ValueError(
            f"--model_dir was trained on {config.data.dataset}: the report needs "
            f"object boxes, which only cluttered_digits has here"
        )
    result = policy_report(model, config, FLAGS.max_images, FLAGS.samples, rho=FLAGS.rho)
    result["model_dir"] = FLAGS.model_dir
    table = markdown(result)
    output = FLAGS.output or os.path.join(FLAGS.model_dir, "policy_report.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    atomic.write_json(output, {**result, "markdown": table})
    atomic.write_text(os.path.splitext(output)[0] + ".md", table + "\n")
    print(table)


if __name__ == "__main__":
    rarl_flags.define_model_dir_flag(required=False)
    flags.DEFINE_list("compare", [], "Report JSON files to tabulate side by side instead.")
    flags.DEFINE_integer("max_images", 512, "Test images to measure on.")
    flags.DEFINE_integer("samples", 8, "Sampled trajectories per image for the reward rows.")
    flags.DEFINE_float(
        "rho",
        0.3,
        "Inhibition radius of the rows that add inhibition of return "
        "(random_inhibited, inhibition_on) where the model has none of its own.",
    )
    flags.DEFINE_string("output", None, "JSON path; default MODEL_DIR/policy_report.json.")
    app.run(cli.user_errors_exit(main), flags_parser=cli.parse_flags)
