"""Inference and training speed, measured side by side: the paper's efficiency claims.

    python -m tools.benchmark --output=benchmark.json               # embedded default + VGG16
    python -m tools.benchmark --flagfile=voc.flags --sizes=config --output=voc_bench.json

Two model sizes by default: `vgg16_448` (the paper's network, VGG16 conv5_3, N = 448, anchors
scaled from the paper's 80/160/320 at 512, random weights: speed does not depend on them) and
`config` (the model the flags describe; without --flagfile, the embedded default
`digits.flags`). Every time is the median of --repeats runs after --warmup runs, one image per
call, in this process, so the ratios compare like with like. Two paths are measured side by
side (PATHS): "old", `tf.image.crop_and_resize` without XLA (the default), and "new", the matmul
crop compiled by XLA (`--jit_compile`), from the same weights.

  attention_overhead      RARL, one view (old path) / backbone forward alone (the faster of
                          the two paths' backbones)
  attention_overhead_new  the same for the new path
  tenview_ratio           RARL, ten views cropped on the feature map / one view
  naive_tenview_ratio     ten view images cropped from the image, through the whole model /
                          one view
  proposal_speedup        HCP-style baseline / RARL ten views, per image: P proposal boxes
                          cropped from the image, resized to the backbone's input, through the
                          same backbone, global max pooling, a dense layer, category-wise max
                          pooling (proposal *generation* is not timed); measured on chunks of
                          --proposal_batch proposals, times P / --proposal_batch
  tflite_vs_tf            the float32 TFLite model (LiteRT, XNNPACK CPU kernels) / Keras, one
                          view
  train_rarl_new_vs_old   RARL training images/s, new path / old path
  train_rarl_new_vs_global_old  RARL's new path / the global-pooling baseline's old path

With --breakdown (the default) a RARL training step's parts are also timed on their own
(`tools/step_breakdown.py`).

Results go to --output as JSON and are printed as a markdown table.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import sys
import time

from absl import app, flags

from rarl_tf import atomic, cli
from rarl_tf.config import flags as rarl_flags

FLAGS = flags.FLAGS
SIZES = ("vgg16_448", "config")
DEFAULT_FLAGFILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "digits.flags"
)


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
    from rarl_tf.config.experiment import ModelConfig

    return ModelConfig(
        backbone="vgg16",
        backbone_weights="none",
        image_size=448,
        crop_margin=64,
        anchor_sizes=(70.0, 140.0, 280.0),
    )


PATHS = {
    # name: (crop_mode, jit_compile)
    "old": ("crop_and_resize", False),  # tf.image.crop_and_resize, no XLA (the default)
    "new": ("matmul", True),  # the matmul crop, compiled by XLA (--jit_compile)
}


def measure_size(m, num_classes: int, t, progress) -> dict:
    """All timings for one ModelConfig `m`; `t` holds the run's knobs."""
    import numpy as np
    import tensorflow as tf

    from rarl_tf.model.factory import build_model

    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 255, (1, m.image_size, m.image_size, 3)).astype(np.float32))
    models = {
        path: build_model(m, num_classes, seed=0, crop_mode=crop, backbone_weights="none")
        for path, (crop, _) in PATHS.items()
    }
    models["new"].set_weights(models["old"].get_weights())
    timed = lambda fn: median_seconds(fn, t["repeats"], t["warmup"])  # noqa: E731
    result = {
        "image_size": m.image_size,
        "backbone": m.backbone,
        "num_steps": m.num_steps,
        "anchors": len(m.anchor_sizes) * len(m.aspect_ratios),
    }
    result.update(inference_times(models, m, image, timed))
    progress.add(1)
    result.update(proposal_times(models["old"], m, num_classes, image, t, timed))
    progress.add(1)
    result.update(tflite_times(models["new"], m, image, timed))
    progress.add(1)
    result.update(train_times(m, num_classes, t, timed))
    progress.add(1)
    result["ratios"] = ratios(result)
    return result


def inference_times(models: dict, m, image, timed) -> dict:
    """One image: the backbone alone, RARL through one and ten views, and ten view images
    through the whole model, for each of PATHS (one view and the backbone)."""
    import tensorflow as tf

    from rarl_tf.model import crop as crop_lib
    from rarl_tf.model.views import FULL_VIEW, ten_views

    views10 = ten_views(m.image_size, m.crop_margin)
    side = m.image_size - m.crop_margin
    result = {}
    for path, (_, jit) in PATHS.items():
        model = models[path]
        backbone = tf.function(lambda x: model.backbone(x, training=False), jit_compile=jit)
        one_view = tf.function(
            lambda x: model(x, training=False, views=FULL_VIEW)["probs"], jit_compile=jit
        )
        suffix = "" if path == "old" else "_xla"
        result[f"backbone_forward{suffix}_s"] = timed(lambda: backbone(image).numpy())
        result[f"rarl_one_view{suffix}_s"] = timed(lambda: one_view(image).numpy())
    model = models["old"]
    ten_view = tf.function(lambda x: model(x, training=False, views=views10)["probs"])

    @tf.function
    def naive_ten(x):
        # The ten view images themselves (mirrored boxes flip), each through the whole model.
        crops = crop_lib.crop_regions(x, views10, tf.zeros([10], tf.int32), side)
        return tf.reduce_mean(model(crops, training=False)["probs"], axis=0)

    result["rarl_ten_views_s"] = timed(lambda: ten_view(image).numpy())
    result["naive_ten_views_s"] = timed(lambda: naive_ten(image).numpy())
    return result


def proposal_times(model, m, num_classes: int, image, t, timed) -> dict:
    """HCP-style: P proposals cropped from the image at the backbone's input size, through the
    backbone, global max pooling, a dense layer and category-wise max pooling."""
    import keras
    import numpy as np
    import tensorflow as tf

    from rarl_tf.model import crop as crop_lib

    proposal_side = t["proposal_side"] or m.image_size - m.crop_margin
    classifier = keras.layers.Dense(num_classes)
    classifier.build((None, model.backbone.output_shape[-1]))
    boxes = np.random.default_rng(0).uniform(0, 1, (t["proposal_batch"], 2, 2))
    boxes = np.concatenate([boxes.min(axis=1), boxes.max(axis=1)], axis=1).astype(np.float32)

    @tf.function
    def proposal_chunk(x):
        crops = crop_lib.crop_regions(x, boxes, tf.zeros([len(boxes)], tf.int32), proposal_side)
        features = model.backbone(crops, training=False)
        scores = classifier(tf.reduce_max(features, axis=[1, 2]))
        return tf.reduce_max(scores, axis=0)  # category-wise max pooling over proposals

    chunk = timed(lambda: proposal_chunk(image).numpy())
    return dict(
        proposals=t["proposals"],
        proposal_side=proposal_side,
        proposal_chunk_s=chunk,
        proposal_per_image_s=chunk * t["proposals"] / t["proposal_batch"],
    )


def tflite_times(matmul_model, m, image, timed) -> dict:
    """The float32 TFLite model (LiteRT, XNNPACK CPU kernels) against Keras, one view."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from rarl_tf.export.tflite import convert_model
    from rarl_tf.inference import outputs
    from rarl_tf.model.views import FULL_VIEW

    interpreter = Interpreter(
        model_content=convert_model(matmul_model, m.image_size), num_threads=os.cpu_count()
    )
    runner = interpreter.get_signature_runner("serving_default")
    pixels = image.numpy()
    keras_probs = matmul_model(pixels, training=False, views=FULL_VIEW)["probs"].numpy()
    tflite_probs = outputs.from_exported(runner(pixels=pixels))["probs"]
    return {
        "tflite_max_abs_diff": float(np.abs(tflite_probs - keras_probs).max()),
        "tflite_one_view_s": timed(lambda: runner(pixels=pixels)),
    }


def train_times(m, num_classes: int, t, timed) -> dict:
    """Training images/s of RARL and the global-pooling baseline on each of PATHS (each model
    built from the same seed), and the RARL step's per-part breakdown on the old path."""
    import keras
    import numpy as np
    import tensorflow as tf

    from rarl_tf.model.factory import build_model
    from tools.step_breakdown import train_breakdown

    batch, side = t["train_batch"], m.image_size - m.crop_margin
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (batch, side, side, 3)).astype(np.float32))
    labels = tf.constant(np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, batch)])
    result = {"train_batch": batch}
    for arch in ("rarl", "global"):
        for path, (crop, jit) in PATHS.items():
            trainee = build_model(
                dataclasses.replace(m, architecture=arch),
                num_classes,
                seed=0,
                crop_mode=crop,
                backbone_weights="none",
            )
            trainee.compile(optimizer=keras.optimizers.Adam(1e-5), jit_compile=jit)
            trainee.optimizer.build(trainee.trainable_variables)
            step = tf.function(trainee.train_step, jit_compile=jit)
            seconds = timed(lambda: float(step((images, labels))["loss"]))
            result[f"train_{arch}_{path}_images_per_s"] = batch / seconds
            if arch == "rarl" and path == "old" and t["breakdown"]:
                result["train_breakdown_s"] = train_breakdown(trainee, images, labels, timed)
    return result


def ratios(r: dict) -> dict:
    """The paper's efficiency ratios, and the new path's against the old."""
    # Against the faster of the two backbones: a path must not look cheap by a slow backbone.
    backbone = min(r["backbone_forward_s"], r["backbone_forward_xla_s"])
    return {
        "attention_overhead": r["rarl_one_view_s"] / backbone,
        "attention_overhead_new": r["rarl_one_view_xla_s"] / backbone,
        "tenview_ratio": r["rarl_ten_views_s"] / r["rarl_one_view_s"],
        "naive_tenview_ratio": r["naive_ten_views_s"] / r["rarl_one_view_s"],
        "proposal_speedup": r["proposal_per_image_s"] / r["rarl_ten_views_s"],
        "tflite_vs_tf": r["tflite_one_view_s"] / r["rarl_one_view_s"],
        "train_rarl_new_vs_old": (
            r["train_rarl_new_images_per_s"] / r["train_rarl_old_images_per_s"]
        ),
        "train_rarl_new_vs_global_old": (
            r["train_rarl_new_images_per_s"] / r["train_global_old_images_per_s"]
        ),
    }


# (label, key in a size's result, unit): the rows measured on both PATHS, then the others.
MEASURES = (
    tuple(
        (f"{label} ({path} path)", f"{key}{'' if path == 'old' else '_xla'}_s", "ms")
        for label, key in (
            ("backbone forward", "backbone_forward"),
            ("RARL, one view", "rarl_one_view"),
        )
        for path in PATHS
    )
    + (
        ("RARL, ten views on the feature map", "rarl_ten_views_s", "ms"),
        ("ten view images through the model", "naive_ten_views_s", "ms"),
        ("HCP-style, per image", "proposal_per_image_s", "s"),
        ("TFLite float32 (LiteRT), one view", "tflite_one_view_s", "ms"),
    )
    + tuple(
        (f"train images/s, {label}, {path} path", f"train_{arch}_{path}_images_per_s", "/s")
        for arch, label in (("rarl", "RARL"), ("global", "global pooling"))
        for path in PATHS
    )
)


def _cell(value, unit: str) -> str:
    if unit == "ms":
        return f"{value * 1000:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.1f}"  # images/s


def markdown(results: dict) -> str:
    """The measures and ratios, a column per size, then the per-part breakdown of a training
    step (where measured)."""
    from rarl_tf.evaluation.tables import markdown_table

    sizes = results["sizes"]
    rows = [["image size N"] + [str(r["image_size"]) for r in sizes.values()]]
    rows += [
        [label] + [_cell(r[key], unit) for r in sizes.values()] for label, key, unit in MEASURES
    ]
    ratio_names = next(iter(sizes.values()))["ratios"]
    rows += [
        [f"**{name}**"] + [f"{r['ratios'][name]:.2f}" for r in sizes.values()]
        for name in ratio_names
    ]
    table = markdown_table(["measure", *sizes], rows)
    measured = {
        name: r["train_breakdown_s"] for name, r in sizes.items() if "train_breakdown_s" in r
    }
    if not measured:
        return table
    parts = [
        [part]
        + [
            f"{b[part] * 1000:.1f} ms ({100 * b[part] / b['step']:.0f} %)"
            for b in measured.values()
        ]
        for part in next(iter(measured.values()))
    ]
    return (
        table + "\n\nA RARL training step (old path), each part timed forward and "
        "backward on its own (% of the whole step):\n\n"
        + markdown_table(["part", *measured], parts)
    )


def _check_flags() -> None:
    """Returns nothing; raises ValueError naming the first flag whose value cannot be measured."""
    unknown = [s for s in FLAGS.sizes if s not in SIZES]
    if unknown:
        raise ValueError(
            f"--sizes={','.join(FLAGS.sizes)} is not allowed: {unknown} unknown; "
            f"expected names from {SIZES}"
        )
    for name in ("repeats", "proposals", "proposal_batch"):
        if getattr(FLAGS, name) < 1:
            raise ValueError(f"--{name}={getattr(FLAGS, name)} is not allowed: expected >= 1")
    if FLAGS.warmup < 0 or FLAGS.train_batch < 0:
        raise ValueError(
            f"--warmup={FLAGS.warmup} / --train_batch={FLAGS.train_batch} is not "
            f"allowed: expected >= 0"
        )


def _machine() -> dict:
    """What the figures were measured on: CPU count, platform, GPUs and software versions."""
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "python": sys.version.split()[0],
    }


def main(argv):
    cli.no_arguments(argv)
    config = rarl_flags.experiment_config_from_flags()
    _check_flags()
    import keras

    from rarl_tf.data.splits import class_names

    num_classes = len(class_names(config))
    knobs = {
        "repeats": FLAGS.repeats,
        "warmup": FLAGS.warmup,
        "proposals": FLAGS.proposals,
        "proposal_batch": FLAGS.proposal_batch,
        "proposal_side": FLAGS.proposal_side,
        "train_batch": FLAGS.train_batch,
        "breakdown": FLAGS.breakdown,
    }
    results = {
        "command": " ".join(sys.argv[1:]),
        "machine": _machine(),
        "knobs": knobs,
        "num_classes": num_classes,
        "sizes": {},
    }
    progress = keras.utils.Progbar(4 * len(FLAGS.sizes), unit_name="stage")
    for size in FLAGS.sizes:
        if size == "vgg16_448":
            # VGG16's input side, as HCP feeds its proposals.
            here = {
                **knobs,
                "proposal_side": FLAGS.proposal_side or 224,
                "train_batch": FLAGS.train_batch or 2,
            }
            results["sizes"][size] = measure_size(vgg16_448_config(), 20, here, progress)
        else:
            here = {**knobs, "train_batch": FLAGS.train_batch or config.train.batch_size}
            results["sizes"][size] = measure_size(config.model, num_classes, here, progress)
    results["markdown"] = markdown(results)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    atomic.write_json(FLAGS.output, results)
    print(results["markdown"])


if __name__ == "__main__":
    rarl_flags.define_experiment_flags()
    flags.DEFINE_list("sizes", list(SIZES), f"Model sizes to measure, from {SIZES}.")
    flags.DEFINE_string("output", "benchmark.json", "Where to write the JSON results.")
    flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (the median is reported).")
    flags.DEFINE_integer("warmup", 2, "Untimed runs first (tracing, caches).")
    flags.DEFINE_integer("proposals", 500, "P, the HCP-style baseline's proposals per image.")
    flags.DEFINE_integer("proposal_batch", 25, "Proposals per timed chunk.")
    flags.DEFINE_integer(
        "proposal_side",
        0,
        "Side the proposals are resized to (0: 224 for vgg16_448, N - m for the configured model).",
    )
    flags.DEFINE_bool("breakdown", True, "Time each part of a RARL training step on its own.")
    flags.DEFINE_integer(
        "train_batch",
        0,
        "Batch of the timed training steps (0: 2 for "
        "vgg16_448, --batch_size for the configured model).",
    )
    argv = sys.argv
    if not any(a.startswith("--flagfile") for a in argv[1:]):
        argv = [argv[0], f"--flagfile={DEFAULT_FLAGFILE}", *argv[1:]]
    app.run(cli.user_errors_exit(main), argv=argv, flags_parser=cli.parse_flags)
