"""Evaluate trained models on their dataset's evaluation split.

    python -m rarl_tf.evaluate --model_dir=runs/digits --views=10 --output=metrics10.json

Prints and writes mAP, CP, CR, CF1, OP, OR, OF1 (fractions), per-class AP, views and num_images.
Ten views are cropped from the feature map of one N x N forward pass per image.
"""

from __future__ import annotations

import dataclasses
import json

from absl import app, flags

from rarl_tf import cli
from rarl_tf import flags as rarl_flags

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    eval_config = rarl_flags.eval_config_from_flags()
    from rarl_tf import evaluation
    from rarl_tf.model.factory import load_trained

    model, config = load_trained(FLAGS.model_dir)
    config = dataclasses.replace(config, eval=eval_config)
    if FLAGS.data_dir:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                      data_dir=FLAGS.data_dir))
    results = evaluation.evaluate(model, config)
    text = json.dumps(results, indent=2)
    print(text)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    rarl_flags.define_model_dir_flag()
    rarl_flags.define_eval_flags()
    flags.DEFINE_string("data_dir", None, "Override the data_dir the model was trained with.")
    flags.DEFINE_string("output", None, "Write the metrics as JSON here.")
    app.run(cli.user_errors_exit(main))
