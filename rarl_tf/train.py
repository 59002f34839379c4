"""Train RARL, then evaluate it on the evaluation split.

    python -m rarl_tf.train --flagfile=digits.flags --model_dir=runs/digits

Writes MODEL_DIR/metrics.json (mAP, CP, CR, CF1, OP, OR, OF1, views, num_images, per-class AP).
Rerunning with the same --model_dir resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import time

from absl import app

from rarl_tf import cli
from rarl_tf import flags as rarl_flags


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; flags go as --name=value")
    config = rarl_flags.experiment_config_from_flags()
    model_dir = rarl_flags.FLAGS.model_dir

    # Imported after flag validation so a bad flag fails before TensorFlow starts.
    from rarl_tf import evaluation, training

    start = time.time()
    model, config = training.train(config, model_dir)
    results = evaluation.evaluate(model, config)
    results["train_and_eval_seconds"] = round(time.time() - start, 1)
    with open(os.path.join(model_dir, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps({k: v for k, v in results.items() if k != "per_class_ap"}))


if __name__ == "__main__":
    rarl_flags.define_model_dir_flag()
    rarl_flags.define_experiment_flags()
    app.run(cli.user_errors_exit(main))
