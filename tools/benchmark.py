"""Inference and training speed, measured side by side: the paper's efficiency claims.

    python -m tools.benchmark --output=benchmark.json               # embedded default + VGG16
    python -m tools.benchmark --flagfile=voc.flags --sizes=config --output=voc_bench.json

Two model sizes by default: `vgg16_448` (the paper's network, VGG16 conv5_3, N = 448, anchors
scaled from the paper's 80/160/320 at 512, random weights: speed does not depend on them) and
`config` (the model the flags describe; without --flagfile, the embedded default
`digits.flags`). Every time is the median of --repeats runs after --warmup runs, one image per
call, in this process, so the ratios compare like with like:

  attention_overhead   RARL, one view / backbone forward alone
  tenview_ratio        RARL, ten views cropped on the feature map / one view
  naive_tenview_ratio  ten view images cropped from the image, through the whole model / one view
  proposal_speedup     HCP-style baseline / RARL ten views, per image: P proposal boxes cropped
                       from the image, resized to the backbone's input, through the same
                       backbone, global max pooling, a dense layer, category-wise max pooling
                       (proposal *generation* is not timed); measured on chunks of
                       --proposal_batch proposals, times P / --proposal_batch
  tflite_vs_tf         the float32 TFLite model (LiteRT, XNNPACK CPU kernels) / Keras, one view
  train images/s       training steps of RARL and of the global-pooling baseline

Results go to --output as JSON and are printed as a markdown table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time

from absl import app, flags

from rarl_tf import cli
from rarl_tf import flags as rarl_flags

FLAGS = flags.FLAGS
SIZES = ("vgg16_448", "config")
DEFAULT_FLAGFILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "digits.flags")


def median_seconds(fn, repeats: int, warmup: int) -> float:
    """Median wall time of `fn()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def vgg16_448_config():
    """The paper's model at N = 448 (anchors 80/160/320 scaled by 448 / 512), VOC's 20 classes."""
    from rarl_tf.config import ModelConfig

    return ModelConfig(backbone="vgg16", backbone_weights="none", image_size=448,
                       crop_margin=64, anchor_sizes=(70.0, 140.0, 280.0))


def measure_size(m, num_classes: int, t, progress) -> dict:
    """All timings for one ModelConfig `m`; `t` holds the run's knobs."""
    import keras
    import numpy as np
    import tensorflow as tf

    from export.tflite import convert_model
    from rarl_tf.model import crop as crop_lib
    from rarl_tf.model.factory import build_model
    from rarl_tf.model.views import FULL_VIEW, ten_views

    n, side = m.image_size, m.image_size - m.crop_margin
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 255, (1, n, n, 3)).astype(np.float32))
    views10 = ten_views(n, m.crop_margin)
    model = build_model(m, num_classes, seed=0, backbone_weights="none")
    timed = lambda fn: median_seconds(fn, t["repeats"], t["warmup"])  # noqa: E731

    backbone = tf.function(lambda x: model.backbone(x, training=False))
    one_view = tf.function(lambda x: model(x, training=False, views=FULL_VIEW)["probs"])
    ten_view = tf.function(lambda x: model(x, training=False, views=views10)["probs"])

    @tf.function
    def naive_ten(x):
        # The ten view images themselves (mirrored boxes flip), each through the whole model.
        crops = crop_lib.crop_regions(x, views10, tf.zeros([10], tf.int32), side)
        return tf.reduce_mean(model(crops, training=False)["probs"], axis=0)

    result = {"image_size": n, "backbone": m.backbone, "num_steps": m.num_steps,
              "anchors": len(m.anchor_sizes) * len(m.aspect_ratios)}
    result["backbone_forward_s"] = timed(lambda: backbone(image).numpy())
    progress.add(1)
    result["rarl_one_view_s"] = timed(lambda: one_view(image).numpy())
    result["rarl_ten_views_s"] = timed(lambda: ten_view(image).numpy())
    result["naive_ten_views_s"] = timed(lambda: naive_ten(image).numpy())
    progress.add(1)

    # HCP-style: proposals cropped from the image at the backbone's input size.
    proposal_side = t["proposal_side"] or side
    classifier = keras.layers.Dense(num_classes)
    classifier.build((None, model.backbone.output_shape[-1]))
    boxes = rng.uniform(0, 1, (t["proposal_batch"], 2, 2))
    boxes = np.concatenate([boxes.min(axis=1), boxes.max(axis=1)], axis=1).astype(np.float32)

    @tf.function
    def proposal_chunk(x):
        crops = crop_lib.crop_regions(x, boxes, tf.zeros([len(boxes)], tf.int32), proposal_side)
        features = model.backbone(crops, training=False)
        scores = classifier(tf.reduce_max(features, axis=[1, 2]))
        return tf.reduce_max(scores, axis=0)  # category-wise max pooling over proposals

    chunk = timed(lambda: proposal_chunk(image).numpy())
    chunks = t["proposals"] / t["proposal_batch"]
    result.update(proposals=t["proposals"], proposal_side=proposal_side,
                  proposal_chunk_s=chunk, proposal_per_image_s=chunk * chunks)
    progress.add(1)

    # TFLite float32 through LiteRT, against Keras on the same one-view input.
    from ai_edge_litert.interpreter import Interpreter

    matmul_model = build_model(m, num_classes, seed=0, crop_mode="matmul",
                               backbone_weights="none")
    matmul_model.set_weights(model.get_weights())
    interpreter = Interpreter(model_content=convert_model(matmul_model, n),
                              num_threads=os.cpu_count())
    runner = interpreter.get_signature_runner("serving_default")
    pixels = image.numpy()
    tflite_scores = runner(pixels=pixels)["scores"]
    result["tflite_max_abs_diff"] = float(np.abs(tflite_scores - one_view(image).numpy()).max())
    result["tflite_one_view_s"] = timed(lambda: runner(pixels=pixels))
    progress.add(1)

    # Training: images per second of the custom train_step, RARL and global pooling.
    batch = t["train_batch"]
    images = tf.constant(rng.uniform(0, 255, (batch, side, side, 3)).astype(np.float32))
    labels = tf.constant(np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes,
                                                                            batch)])
    for arch in ("rarl", "global"):
        trainee = build_model(dataclasses.replace(m, architecture=arch), num_classes, seed=0,
                              backbone_weights="none")
        trainee.compile(optimizer=keras.optimizers.Adam(1e-5), jit_compile=False)
        trainee.optimizer.build(trainee.trainable_variables)
        step = tf.function(trainee.train_step)
        seconds = median_seconds(lambda: float(step((images, labels))["loss"]),
                                 t["repeats"], t["warmup"])
        result[f"train_{arch}_images_per_s"] = batch / seconds
    result["train_batch"] = batch
    progress.add(1)

    result["ratios"] = {
        "attention_overhead": result["rarl_one_view_s"] / result["backbone_forward_s"],
        "tenview_ratio": result["rarl_ten_views_s"] / result["rarl_one_view_s"],
        "naive_tenview_ratio": result["naive_ten_views_s"] / result["rarl_one_view_s"],
        "proposal_speedup": result["proposal_per_image_s"] / result["rarl_ten_views_s"],
        "tflite_vs_tf": result["tflite_one_view_s"] / result["rarl_one_view_s"],
    }
    return result


def markdown(results: dict) -> str:
    sizes = list(results["sizes"])
    rows = ["| measure | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]

    def row(label, fn):
        rows.append(f"| {label} | " + " | ".join(fn(results["sizes"][s]) for s in sizes) + " |")

    ms = lambda key: lambda r: f"{r[key] * 1000:.1f} ms"  # noqa: E731
    row("image size N", lambda r: str(r["image_size"]))
    row("backbone forward", ms("backbone_forward_s"))
    row("RARL, one view", ms("rarl_one_view_s"))
    row("RARL, ten views on the feature map", ms("rarl_ten_views_s"))
    row("ten view images through the model", ms("naive_ten_views_s"))
    row("HCP-style, per image", lambda r: f"{r['proposal_per_image_s']:.2f} s "
        f"({r['proposals']} proposals at {r['proposal_side']} px)")
    row("TFLite float32 (LiteRT), one view", ms("tflite_one_view_s"))
    for name in ("attention_overhead", "tenview_ratio", "naive_tenview_ratio",
                 "proposal_speedup", "tflite_vs_tf"):
        row(f"**{name}**", lambda r, name=name: f"{r['ratios'][name]:.2f}")
    row("train images/s, RARL", lambda r: f"{r['train_rarl_images_per_s']:.1f} "
        f"(batch {r['train_batch']})")
    row("train images/s, global pooling", lambda r: f"{r['train_global_images_per_s']:.1f}")
    return "\n".join(rows)


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; flags go as --name=value")
    config = rarl_flags.experiment_config_from_flags()
    unknown = [s for s in FLAGS.sizes if s not in SIZES]
    if unknown:
        raise ValueError(f"--sizes={','.join(FLAGS.sizes)} is not allowed: {unknown} unknown; "
                         f"expected names from {SIZES}")
    for name in ("repeats", "proposals", "proposal_batch"):
        if getattr(FLAGS, name) < 1:
            raise ValueError(f"--{name}={getattr(FLAGS, name)} is not allowed: expected >= 1")
    if FLAGS.warmup < 0 or FLAGS.train_batch < 0:
        raise ValueError(f"--warmup={FLAGS.warmup} / --train_batch={FLAGS.train_batch} is not "
                         f"allowed: expected >= 0")
    import keras
    import tensorflow as tf

    from rarl_tf.data.sources import get_source

    num_classes = len(get_source(config.data.dataset).class_names)
    knobs = {"repeats": FLAGS.repeats, "warmup": FLAGS.warmup, "proposals": FLAGS.proposals,
             "proposal_batch": FLAGS.proposal_batch, "proposal_side": FLAGS.proposal_side,
             "train_batch": FLAGS.train_batch}
    results = {"command": " ".join(sys.argv[1:]),
               "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                           "gpus": len(tf.config.list_physical_devices("GPU")),
                           "tensorflow": tf.__version__, "python": sys.version.split()[0]},
               "knobs": knobs, "num_classes": num_classes, "sizes": {}}
    progress = keras.utils.Progbar(5 * len(FLAGS.sizes), unit_name="stage")
    for size in FLAGS.sizes:
        if size == "vgg16_448":
            # VGG16's input side, as HCP feeds its proposals.
            here = {**knobs, "proposal_side": FLAGS.proposal_side or 224,
                    "train_batch": FLAGS.train_batch or 2}
            results["sizes"][size] = measure_size(vgg16_448_config(), 20, here, progress)
        else:
            here = {**knobs, "train_batch": FLAGS.train_batch or config.train.batch_size}
            results["sizes"][size] = measure_size(config.model, num_classes, here, progress)
    results["markdown"] = markdown(results)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as f:
        json.dump(results, f, indent=2)
    print(results["markdown"])


if __name__ == "__main__":
    rarl_flags.define_experiment_flags()
    flags.DEFINE_list("sizes", list(SIZES), f"Model sizes to measure, from {SIZES}.")
    flags.DEFINE_string("output", "benchmark.json", "Where to write the JSON results.")
    flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (the median is reported).")
    flags.DEFINE_integer("warmup", 2, "Untimed runs first (tracing, caches).")
    flags.DEFINE_integer("proposals", 500, "P, the HCP-style baseline's proposals per image.")
    flags.DEFINE_integer("proposal_batch", 25, "Proposals per timed chunk.")
    flags.DEFINE_integer("proposal_side", 0, "Side the proposals are resized to (0: 224 for "
                         "vgg16_448, N - m for the configured model).")
    flags.DEFINE_integer("train_batch", 0, "Batch of the timed training steps (0: 2 for "
                         "vgg16_448, --batch_size for the configured model).")
    argv = sys.argv
    if not any(a.startswith("--flagfile") for a in argv[1:]):
        argv = [argv[0], f"--flagfile={DEFAULT_FLAGFILE}", *argv[1:]]
    app.run(cli.user_errors_exit(main), argv=argv)
