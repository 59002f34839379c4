"""Export a trained model to TFLite with builtin ops only (stock LiteRT, GPU delegate).

    python -m rarl_tf.export.tflite --model_dir=runs/digits --output=rarl.tflite --quantization=none

`tf.image.crop_and_resize` is not a TFLite builtin, so the exported graph
(`rarl_tf/export/gpu_graph.py`) crops with interpolation weights multiplied into the feature map,
one matrix product per step; locations are the policy's mode, so the graph holds no random op.
The model takes one image:

  signature "serving_default": pixels float32 [1, N, N, 3] (RGB in [0, 255], already resized)
    -> scores [1, C], boxes [1, T, k, 4] (normalised y1, x1, y2, x2), centres [1, T, 2]
       (the attended locations (y, x), normalised); `scores` are the Python side's `probs`
       (rarl_tf/inference/outputs.py holds the one mapping)

The class names go beside it, one per line, in FILE.labels.txt (the classic TFLite labels file).

Quantization: none (float32), float16 (weights), int8 (weights and activations, calibrated on
images of the training split; inputs and outputs stay float32).
The exporter prints the op list and the GPU delegate check of `rarl_tf/export/gpu_rules.py` (the
delegate's own rules; TF's Analyzer reports "compatible" for anything), fails if any op is not
a TFLite builtin, and fails naming each op that would fall back from the GPU delegate to the CPU
unless --allow_cpu_fallback. The graph is `rarl_tf/export/gpu_graph.py`'s rewrite of the model's
forward pass, which the delegate takes whole.
"""

from __future__ import annotations

import collections
import os
import tempfile

from absl import flags

from rarl_tf import cli
from rarl_tf.config import flags as rarl_flags
from rarl_tf.inference.outputs import labels_path

FLAGS = flags.FLAGS
QUANTIZATIONS = ("none", "float16", "int8")
SIGNATURE = "serving_default"


def keras_inference_function(model, image_size: int):
    """tf.function pixels [1, N, N, 3] -> {"scores", "boxes", "centres"} through the Keras
    model's own call (the graph before the GPU-delegate rewrite of rarl_tf/export/gpu_graph.py)."""
    import tensorflow as tf

    from rarl_tf.inference import outputs

    @tf.function(
        input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="pixels")]
    )
    def infer(pixels):
        return outputs.to_exported(outputs.run_model(model, pixels))

    return infer


def op_names(tflite_model: bytes) -> list[str]:
    """The op names of a TFLite flatbuffer, in execution order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_model)
    return [op["op_name"] for op in interpreter._get_ops_details()]  # noqa: SLF001


def non_builtin_ops(names) -> list[str]:
    """Flex (SELECT_TF_OPS) and custom ops, which the stock runtime and GPU delegate lack."""
    return sorted({n for n in names if n.startswith("Flex") or n in ("CUSTOM", "DELEGATE")})


def convert(model_dir: str, quantization: str = "none", representative_images=None) -> bytes:
    """The TFLite flatbuffer of the model trained in `model_dir`.

    Args:
      representative_images: for int8, an iterable of float32 [1, N, N, 3] training images.
    """
    from rarl_tf.model_folder import load_trained

    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"--quantization={quantization} is not allowed: expected one of {QUANTIZATIONS}"
        )
    model, config = load_trained(model_dir, crop_mode="matmul")
    return convert_model(model, config.model.image_size, quantization, representative_images)


def convert_model(
    model, image_size: int, quantization: str = "none", representative_images=None
) -> bytes:
    """The TFLite flatbuffer of a built model whose agent crops with `crop_mode="matmul"`."""
    from rarl_tf.export import gpu_graph

    concrete = gpu_graph.inference_function(model, image_size).get_concrete_function()
    return convert_function(concrete, quantization, representative_images)


def convert_function(concrete, quantization: str = "none", representative_images=None) -> bytes:
    """The TFLite flatbuffer of a concrete function of one input, `pixels`, its variables
    frozen, with one signature (`SIGNATURE`) of the function's named outputs."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Freeze explicitly: handed the live function (or a SavedModel of it), the converter kept
    # Keras 3's variables as resource variables that LiteRT never initialised (NaN outputs).
    frozen = convert_variables_to_constants_v2(concrete)
    # A SavedModel signature around the frozen graph gives the TFLite model a named signature
    # ("serving_default": pixels -> scores, boxes) instead of positional args_0 tensors.
    module = tf.Module()
    module.infer = tf.function(
        lambda pixels: tf.nest.pack_sequence_as(
            concrete.structured_outputs, tf.nest.flatten(frozen(pixels))
        ),
        input_signature=concrete.structured_input_signature[0],
        autograph=False,
    )
    with tempfile.TemporaryDirectory() as staging:
        tf.saved_model.save(module, staging, signatures={SIGNATURE: module.infer})
        converter = tf.lite.TFLiteConverter.from_saved_model(staging, signature_keys=[SIGNATURE])
        return _quantize_and_convert(converter, quantization, representative_images)


def _quantize_and_convert(converter, quantization, representative_images) -> bytes:
    import tensorflow as tf

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if representative_images is None:
            raise ValueError("int8 quantization needs representative images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image] for image in representative_images)
    return converter.convert()


def training_images(model_dir: str, count: int = 100, split: str = "train"):
    """`count` images of the split (training by default) resized as for evaluation:
    [1, N, N, 3] float32 each."""
    from rarl_tf.data import pipeline
    from rarl_tf.data.splits import load_split
    from rarl_tf.model_folder import load_config

    config = load_config(model_dir)
    examples = load_split(config, split)
    for images, _, _ in pipeline.eval_batches(examples.take(count), config.model.image_size, 1):
        yield images.numpy()


def gpu_check(content: bytes, allow_cpu_fallback: bool = False):
    """The GPU delegate's rules applied to a converted model (rarl_tf/export/gpu_rules.py);
    prints the summary and raises `cli.RunFailed` with one line per op that would fall back to the
    CPU, unless `allow_cpu_fallback`."""
    from rarl_tf.export import gpu_rules

    report = gpu_rules.check_model(content)
    print(report.summary())
    if report.reasons and not allow_cpu_fallback:
        raise cli.RunFailed(
            f"{len(report.reasons)} ops would fall back from the TFLite GPU delegate to the "
            f"CPU (pass --allow_cpu_fallback to write the model anyway):\n"
            + "\n".join(report.fallback_lines())
        )
    for line in report.fallback_lines():
        print("CPU fallback:", line)
    return report


def check_output(output: str, overwrite: bool = False) -> None:
    """Raises ValueError (before any work) if `output` or its labels file exists and
    `overwrite` is False, or PermissionError if its folder cannot be written."""
    from rarl_tf import atomic

    for path in (output, labels_path(output)):
        if os.path.lexists(path) and not overwrite:
            raise ValueError(
                f"{path} exists (an earlier export): pass --overwrite to replace "
                f"it, or choose another --output"
            )
    folder = os.path.dirname(os.path.abspath(output))
    atomic.check_folder_can_be(folder, f"--output={output}'s folder {folder}")
    os.makedirs(folder, exist_ok=True)
    atomic.check_writable_file(output, f"--output={output}")


def write_pair(output: str, content: bytes, class_names, overwrite: bool = False) -> None:
    """Writes FILE.tflite and FILE.labels.txt as a pair: both are written whole to temporary
    files first, so a failure leaves any earlier export as it was (`atomic.replacing_all`)."""
    from rarl_tf import atomic

    labels = labels_path(output)
    try:
        with atomic.replacing_all([labels, output], overwrite=overwrite) as (
            labels_temporary,
            model_temporary,
        ):
            with open(model_temporary, "wb") as f:
                f.write(content)
            with open(labels_temporary, "w") as f:
                f.write("\n".join(class_names) + "\n")
    except FileExistsError:  # written by someone else while this one converted
        raise ValueError(
            f"{output} or {labels} appeared during the export: pass --overwrite "
            f"to replace them, or choose another --output"
        ) from None


def export(
    model_dir: str,
    output: str,
    quantization: str = "none",
    calibration_images: int = 100,
    allow_cpu_fallback: bool = False,
    overwrite: bool = False,
) -> list[str]:
    """Writes the TFLite model and its labels (`write_pair`); returns its op names. Raises
    ValueError if the files exist and not `overwrite`, or if any op is not builtin, or
    (`cli.RunFailed`) if any op would fall back from the GPU delegate to the CPU, unless
    `allow_cpu_fallback`."""
    import keras

    from rarl_tf.model_folder import load_config

    check_output(output, overwrite)
    progress = keras.utils.Progbar(3, unit_name="stage")
    images = training_images(model_dir, calibration_images) if quantization == "int8" else None
    content = convert(model_dir, quantization, images)
    progress.add(1)
    names = op_names(content)
    bad = non_builtin_ops(names)
    if bad:
        raise ValueError(
            f"the converted model uses non-builtin ops {bad}; the stock LiteRT "
            f"runtime and the GPU delegate cannot run it"
        )
    progress.add(1)
    print()
    gpu_check(content, allow_cpu_fallback)
    write_pair(output, content, load_config(model_dir).class_names, overwrite)
    progress.add(1)
    counts = collections.Counter(names)
    print("ops:", ", ".join(f"{name} x{n}" for name, n in sorted(counts.items())))
    return names


def main(argv):
    cli.no_arguments(argv)
    export(
        FLAGS.model_dir,
        FLAGS.output,
        FLAGS.quantization,
        FLAGS.calibration_images,
        FLAGS.allow_cpu_fallback,
        FLAGS.overwrite,
    )
    print(f"TFLite model written to {FLAGS.output} ({os.path.getsize(FLAGS.output)} bytes)")


def run():
    """Defines this entry point's flags and runs it (`python -m` and the console script)."""
    rarl_flags.define_model_dir_flag()
    flags.DEFINE_string("output", None, "Where to write the .tflite file.", required=True)
    flags.DEFINE_enum("quantization", "none", list(QUANTIZATIONS), "Post-training quantization.")
    flags.DEFINE_integer("calibration_images", 100, "Training images that calibrate int8.")
    flags.DEFINE_bool(
        "allow_cpu_fallback",
        False,
        "Write the model even if some ops would fall back from the TFLite GPU delegate to the CPU.",
    )
    flags.DEFINE_bool(
        "overwrite",
        False,
        "Replace an existing --output (and its .labels.txt); "
        "without it an existing export is refused before any work.",
    )
    cli.run_entry_point(main)


if __name__ == "__main__":
    run()
