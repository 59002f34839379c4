"""Evaluate trained models on their dataset's evaluation split.

    python -m rarl_tf.evaluate --model_dir=runs/digits --views=10 --output=metrics10.json

Two-scale evaluation as the paper's "Ours" row: give --model_dir once per model (e.g. the N = 512
and N = 640 runs); each model's views are averaged, then the models' probabilities are averaged.

    python -m rarl_tf.evaluate --model_dir=runs/voc512 --model_dir=runs/voc640 --views=10 \
        --format=markdown

Prints and writes mAP, CP, CR, CF1, OP, OR, OF1 (fractions), per-class AP, views, num_images
and the images left out because they did not decode (skipped_images, and their names in skipped);
with several models also each model's own results under "per_model". --format=markdown prints
tables shaped like the paper's Table 1 (per-class AP, up to 20 classes) and Table 2.
Ten views are cropped from the feature map of one N x N forward pass per image.
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import flags

from rarl_tf import atomic, cli
from rarl_tf.config import flags as rarl_flags
from rarl_tf.evaluation import tables

FLAGS = flags.FLAGS


def _name(model_dir: str, image_size: int) -> str:
    return f"{os.path.basename(os.path.normpath(model_dir))} ({image_size})"


def main(argv):
    cli.no_arguments(argv)
    eval_config = rarl_flags.eval_config_from_flags()
    if FLAGS.output:  # before the scoring, not after it
        atomic.check_writable_file(FLAGS.output, f"--output={FLAGS.output}")
    from rarl_tf.evaluation import scoring
    from rarl_tf.model_folder import load_trained

    per_model, scored = {}, []
    for model_dir in FLAGS.model_dir:
        model, config = load_trained(model_dir)
        config = dataclasses.replace(config, eval=eval_config)
        if FLAGS.data_dir:
            config = dataclasses.replace(
                config, data=dataclasses.replace(config.data, data_dir=FLAGS.data_dir)
            )
        if scored and (config.data.dataset, config.class_names) != (
            scored[0][1].data.dataset,
            scored[0][1].class_names,
        ):
            raise ValueError(
                f"--model_dir={model_dir} was trained on {config.data.dataset}, "
                f"the first model on {scored[0][1].data.dataset}: models combined "
                f"in one evaluation must share the dataset and classes"
            )
        print(f"Scoring {model_dir} (N = {config.model.image_size}, {eval_config.views} views)")
        scores, labels, ignore, skipped = scoring.evaluate_scores(
            scoring.model_scorer(model, scoring.eval_views(config)), config
        )
        if scored and scores.shape != scored[0][0][0].shape:
            raise ValueError(
                f"{model_dir} scored {len(scores)} images, the first model "
                f"{len(scored[0][0][0])}: the evaluation data differ"
            )
        scored.append(((scores, labels, ignore), config))
        per_model[_name(model_dir, config.model.image_size)] = scoring.with_skipped(
            scoring.compute_metrics(scores, labels, ignore, eval_config, config.class_names),
            skipped,
        )

    (_, labels, ignore), config = scored[0]
    if len(scored) == 1:
        results = next(iter(per_model.values()))
        named = list(per_model.items())
    else:
        # The paper's two-scale result: the mean of the models' view-averaged probabilities.
        mean_scores = sum(s[0][0] for s in scored) / len(scored)
        results = scoring.with_skipped(
            scoring.compute_metrics(mean_scores, labels, ignore, eval_config, config.class_names),
            next(iter(per_model.values()))["skipped"],
        )
        results["per_model"] = per_model
        named = list(per_model.items()) + [("combined", results)]
    results["model_dirs"] = list(FLAGS.model_dir)

    text = json.dumps(results, indent=2)
    print(tables.results_tables(named) if FLAGS.format == "markdown" else text)
    if FLAGS.output:
        atomic.write_text(FLAGS.output, text)


def run():
    """Defines this entry point's flags and runs it (`python -m` and the console script)."""
    flags.DEFINE_multi_string(
        "model_dir",
        None,
        "Directory written by rarl_tf.train; repeat "
        "to average several models (e.g. N = 512 and 640).",
        required=True,
    )
    rarl_flags.define_eval_flags()
    flags.DEFINE_string("data_dir", None, "Override the data_dir the models were trained with.")
    flags.DEFINE_string("output", None, "Write the metrics as JSON here.")
    flags.DEFINE_enum("format", "json", ["json", "markdown"], "What to print.")
    cli.run_entry_point(main)


if __name__ == "__main__":
    run()
