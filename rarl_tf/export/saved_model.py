"""Export a trained model as a SavedModel in TF Serving's versioned layout.

    python -m rarl_tf.export.saved_model --model_dir=runs/digits --export_base=exported/rarl

writes `exported/rarl/1`, then `exported/rarl/2` on the next export (never overwriting; each
version is written to a temporary folder, fsynced and renamed, so Serving never sees half a
model; two exports at once take two versions, and a failed one leaves no temporary folder).
Each version carries TF Serving warm-up requests, `assets.extra/tf_serving_warmup_requests`
(one PredictRequest per signature, built with tensorflow-serving-api), which Serving replays
on loading the version so that the first real request is not slow.

Signatures:
  serving_default(image_bytes: string [B])  JPEG or PNG bytes, any size; grayscale and RGBA are
      converted to RGB. Bytes that are neither give InvalidArgument "image could not be decoded";
      an image whose header declares more than --max_pixels pixels is refused before it is
      decoded (InvalidArgument "image refused: more than N pixels"), as in training and
      `rarl_tf.predict` (rarl_tf/data/image_header.py).
  predict_pixels(pixels: uint8 [B, H, W, 3])
Both return (`scores` are the Python side's `probs`: rarl_tf/inference/outputs.py holds the mapping)
  scores       float [B, C]     class probabilities (softmax of the max-pooled region scores)
  top_classes  int32 [B, K]     the top-K classes scoring >= threshold, -1 where fewer pass
  top_scores   float [B, K]     their probabilities, 0 where padded
  top_names    string [B, K]    their names ("" where padded): class names live in the graph
  boxes        float [B, T, k, 4]  attended regions, (y1, x1, y2, x2) normalised to the image
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile

from absl import flags

from rarl_tf import atomic, cli
from rarl_tf.config import flags as rarl_flags
from rarl_tf.config.experiment import DEFAULT_MAX_PIXELS, DataConfig, EvalConfig, ExperimentConfig

FLAGS = flags.FLAGS


def next_version_dir(export_base: str) -> str:
    """`export_base/N` with N one past the highest numeric version already there."""
    os.makedirs(export_base, exist_ok=True)
    versions = [int(name) for name in os.listdir(export_base) if name.isdigit()]
    return os.path.join(export_base, str(max(versions, default=0) + 1))


def publish_version(staging: str, export_base: str, attempts: int = 100) -> str:
    """Renames the finished `staging` folder to the next free version under `export_base`.

    Two exports at once may both pick version N: the rename is the claim. rename(2) refuses to
    replace a folder that holds anything (ENOTEMPTY / EEXIST), so the loser takes N + 1 and
    retries; neither overwrites the other. Everything is fsynced first, so a crash after the
    rename cannot leave a version whose files are empty; the version folder gets the umask's
    permissions (mkdtemp made it 0700, which TF Serving running as another user cannot read).
    """
    from rarl_tf import atomic

    os.chmod(staging, atomic.folder_mode())
    atomic.fsync_tree(staging)
    for _ in range(attempts):
        target = next_version_dir(export_base)
        try:
            os.rename(staging, target)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            continue  # another export took this version meanwhile
        atomic.fsync_folder(export_base)
        return target
    raise RuntimeError(
        f"could not claim a version folder under {export_base} after "
        f"{attempts} tries: too many exports at once"
    )


def _decode_image(data, image_size: int, max_pixels: int):
    """The float RGB image, resized to `image_size` x `image_size`, of one JPEG or PNG string;
    raises InvalidArgument for bytes that are neither or that declare more than `max_pixels`."""
    import tensorflow as tf

    from rarl_tf.data import image_header
    from rarl_tf.data.pipeline import resize

    # Serving takes JPEG and PNG only; the size check is the pipeline's (one rule).
    is_png = tf.equal(tf.strings.substr(data, 0, 8), image_header.PNG_SIGNATURE)
    check = tf.debugging.Assert(
        tf.io.is_jpeg(data) | is_png,
        ["image could not be decoded: expected JPEG or PNG bytes"],
        summarize=1,
    )
    with tf.control_dependencies([check]):
        image = image_header.decode(data, max_pixels)
    return resize(image, image_size)


def _serving_outputs(model, class_names, images, top_k: int, threshold: float) -> dict:
    """Both signatures' outputs for a batch of float images: the exported `scores` and `boxes`,
    and the top-K classes, probabilities and names scoring >= `threshold` (padded below K)."""
    import tensorflow as tf

    from rarl_tf.inference import outputs

    out = outputs.run_model(model, images)
    top_scores, top_classes = tf.math.top_k(out["probs"], k=top_k)
    keep = top_scores >= threshold
    return {
        **outputs.to_exported({"probs": out["probs"], "boxes": out["boxes"]}),
        "top_classes": tf.where(keep, top_classes, -1),
        "top_scores": tf.where(keep, top_scores, 0.0),
        "top_names": tf.where(keep, tf.gather(class_names, top_classes), ""),
    }


def build_serving_module(
    model,
    image_size: int,
    class_names,
    top_k: int = EvalConfig.top_k,
    threshold: float = EvalConfig.threshold,
    max_pixels: int = DEFAULT_MAX_PIXELS,
):
    """A tf.Module with the two serving signatures around a trained RARLModel."""
    import tensorflow as tf

    from rarl_tf.data.pipeline import resize

    class ServingModule(tf.Module):
        def __init__(self):
            super().__init__(name="rarl_serving")
            self.model = model
            self.class_names = tf.constant(list(class_names))

        def _outputs(self, images):
            return _serving_outputs(self.model, self.class_names, images, top_k, threshold)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve_bytes(self, image_bytes):
            images = tf.map_fn(
                lambda data: _decode_image(data, image_size, max_pixels),
                image_bytes,
                fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
            )
            return self._outputs(images)

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels")]
        )
        def serve_pixels(self, pixels):
            return self._outputs(
                tf.map_fn(
                    lambda image: resize(image, image_size), pixels, fn_output_signature=tf.float32
                )
            )

    return ServingModule()


WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def warmup_requests(model_name: str, image_size: int):
    """TF Serving warm-up records: a `PredictionLog` per signature, holding a `PredictRequest`
    (tensorflow-serving-api) with one mid-grey N x N image, PNG bytes for serving_default and
    uint8 pixels for predict_pixels. Serving replays them when it loads the version, so the
    first real request does not pay for graph initialisation."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    pixels = np.full((1, image_size, image_size, 3), 128, np.uint8)
    png = tf.io.encode_png(pixels[0]).numpy()
    records = []
    for signature, name, value in (
        ("serving_default", "image_bytes", tf.make_tensor_proto([png], dtype=tf.string)),
        ("predict_pixels", "pixels", tf.make_tensor_proto(pixels)),
    ):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        request.inputs[name].CopyFrom(value)
        records.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return records


def write_warmup_requests(version_dir: str, model_name: str, image_size: int) -> str:
    """Writes `warmup_requests` as a TFRecord file at VERSION/assets.extra/...; returns it."""
    import tensorflow as tf

    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for record in warmup_requests(model_name, image_size):
            writer.write(record.SerializeToString())
    return path


def export(
    model_dir: str,
    export_base: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    top_k: int = EvalConfig.top_k,
    threshold: float = EvalConfig.threshold,
) -> str:
    """Exports the model trained in `model_dir` as the next version under `export_base`."""
    import keras
    import tensorflow as tf

    from rarl_tf.model_folder import load_trained

    progress = keras.utils.Progbar(3, unit_name="stage")
    model, config = load_trained(model_dir)
    if top_k > len(config.class_names):
        raise ValueError(
            f"--top_k={top_k} is not allowed: {model_dir} scores {len(config.class_names)} "
            f"classes, so at most {len(config.class_names)}"
        )
    module = build_serving_module(
        model, config.model.image_size, config.class_names, top_k, threshold, max_pixels
    )
    progress.add(1)
    os.makedirs(export_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=export_base)
    try:
        tf.saved_model.save(
            module,
            staging,
            signatures={
                "serving_default": module.serve_bytes,
                "predict_pixels": module.serve_pixels,
            },
        )
        model_name = os.path.basename(os.path.normpath(export_base))
        write_warmup_requests(staging, model_name, config.model.image_size)
        progress.add(1)
        target = publish_version(staging, export_base)
    finally:
        # Whatever failed (a full disk, an interrupt), no half-written staging folder stays.
        shutil.rmtree(staging, ignore_errors=True)
    progress.add(1)
    return target


def main(argv):
    cli.no_arguments(argv)
    if FLAGS.max_pixels < 1:
        raise ValueError(f"--max_pixels={FLAGS.max_pixels} is not allowed: expected >= 1")
    # The serving signature's top-K settings, checked as evaluate's (ValueError names them).
    ExperimentConfig(eval=EvalConfig(top_k=FLAGS.top_k, threshold=FLAGS.threshold)).validate()
    atomic.check_folder_can_be(FLAGS.export_base, f"--export_base={FLAGS.export_base}")
    path = export(
        FLAGS.model_dir, FLAGS.export_base, FLAGS.max_pixels, FLAGS.top_k, FLAGS.threshold
    )
    print(f"SavedModel written to {path}")


def run():
    """Defines this entry point's flags and runs it (`python -m` and the console script)."""
    rarl_flags.define_model_dir_flag()
    flags.DEFINE_string(
        "export_base", None, "TF Serving model folder; versions go in N/.", required=True
    )
    flags.DEFINE_integer("max_pixels", DataConfig.max_pixels, "Refuse larger images.")
    rarl_flags.define_section_flags(EvalConfig, only=("top_k", "threshold"))
    for name in ("top_k", "threshold"):
        flags.declare_key_flag(name)  # listed by --help, as this entry point's own
    cli.run_entry_point(main)


if __name__ == "__main__":
    run()
