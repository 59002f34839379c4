"""mAP of every export of a trained model on its evaluation split, side by side.

    python -m tools.export_accuracy --model_dir=runs/digits \
        --output=runs/digits/export_accuracy.json

Exports the model to every target of the export registry that Python can run, at each of its
quantizations (today SavedModel; TFLite float32, float16, int8), into --work_dir, scores the
evaluation split with each through the same pipeline and metrics, and prints a markdown table of
mAP, its difference from Keras, and file size; the JSON holds every figure.
"""

from __future__ import annotations

import os

from absl import app, flags

from rarl_tf import atomic, cli
from rarl_tf.config import flags as rarl_flags
from rarl_tf.evaluation import tables

FLAGS = flags.FLAGS


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _scorers(model, work: str) -> dict:
    """Each export's name mapped to (a function from a batch of images to probabilities, the
    path whose size is reported): Keras, and every registered target Python can run at each of
    its quantizations, exported into `work`."""
    from rarl_tf.evaluation import scoring
    from rarl_tf.export.registry import EXPORTERS
    from rarl_tf.model.views import FULL_VIEW
    from rarl_tf.model_folder import WEIGHTS_FILE

    scorers = {
        "keras": (
            scoring.model_scorer(model, FULL_VIEW),
            os.path.join(FLAGS.model_dir, WEIGHTS_FILE),
        )
    }
    for exporter in EXPORTERS.values():
        for quantization in exporter.quantizations if exporter.load else ():
            weights = "float32" if quantization == "none" else quantization
            name = (
                exporter.name if len(exporter.quantizations) == 1 else f"{exporter.name}_{weights}"
            )
            output = os.path.join(work, name + exporter.suffix)
            path = exporter.write(FLAGS.model_dir, output, quantization, FLAGS.calibration_images)
            predict = exporter.load(path)
            scorers[name] = (lambda images, predict=predict: predict(images.numpy())["probs"], path)
    return scorers


def _score_all(scorers: dict, config) -> dict:
    """Each export's name mapped to its mAP, file size, path and image count on the evaluation
    split."""
    from rarl_tf.evaluation import scoring

    results = {}
    for name, (score, path) in scorers.items():
        print(f"scoring {name}")
        scores, labels, ignore, _ = scoring.evaluate_scores(score, config)
        metrics = scoring.compute_metrics(scores, labels, ignore, config.eval, config.class_names)
        results[name] = {
            "mAP": metrics["mAP"],
            "bytes": _size(path),
            "path": path,
            "num_images": metrics["num_images"],
        }
    return results


def main(argv):
    cli.no_arguments(argv)
    from rarl_tf.model_folder import load_trained

    model, config = load_trained(FLAGS.model_dir)
    work = FLAGS.work_dir or os.path.join(FLAGS.model_dir, "exports")
    os.makedirs(work, exist_ok=True)

    results = _score_all(_scorers(model, work), config)
    keras_map = results["keras"]["mAP"]
    rows = []
    for name, r in results.items():
        r["delta_vs_keras"] = r["mAP"] - keras_map
        rows.append([name, f"{r['mAP']:.4f}", f"{r['delta_vs_keras']:+.4f}", r["bytes"]])
    print(tables.markdown_table(["model", "mAP", "mAP - Keras", "size (bytes)"], rows))
    if FLAGS.output:
        atomic.write_json(
            FLAGS.output, {"dataset": config.data.dataset, "views": 1, "results": results}
        )


if __name__ == "__main__":
    rarl_flags.define_model_dir_flag()
    flags.DEFINE_string("work_dir", None, "Where exports go; default MODEL_DIR/exports.")
    flags.DEFINE_string("output", None, "Write the results as JSON here.")
    flags.DEFINE_integer("calibration_images", 100, "Training images that calibrate int8.")
    app.run(cli.user_errors_exit(main), flags_parser=cli.parse_flags)
