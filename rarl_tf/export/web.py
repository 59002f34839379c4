"""Export a trained model as a static web page that runs it in the browser with LiteRT.js.

    python -m rarl_tf.export.web --model_dir=runs/digits --output=site
    python -m http.server -d site      # then open http://localhost:8000

SITE holds everything the page needs, nothing is fetched from elsewhere when it loads (it works
offline): index.html, app.js, the model (model.tflite, `rarl_tf.export.tflite`'s graph; float16
weights by default, --quantization as rarl_tf.export.tflite), model.labels.txt, config.json
(image size, class names, the iteration colours of `predict`'s pictures, top-k and threshold), a
few test images of the model's evaluation split under samples/, and the LiteRT.js files under
litert/, copied from the checkout's node_modules (`npm ci`: package.json and package-lock.json
pin them; --node_modules names another folder).

The page runs the model on WebGPU where the browser has it and the model is fully accelerated
there, else on WebAssembly (`?backend=webgpu|wasm` forces one). It resizes images as `predict`
does (TensorFlow's antialiased bilinear resize, reimplemented in float32 in app.js). SITE is
written whole (a staging folder renamed into place); an existing SITE is refused without
--overwrite.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from absl import flags

from rarl_tf import cli
from rarl_tf.config import flags as rarl_flags

FLAGS = flags.FLAGS
# The checkout, where `npm ci` puts node_modules. Installed from a wheel the package has no
# checkout above it: --node_modules names the folder then.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web_assets")
PAGE_FILES = ("index.html", "app.js")
# --quantization -> what the page and the summary call the model's weights.
WEIGHTS = {"none": "float32", "float16": "float16", "int8": "int8"}
MODEL_FILE = "model.tflite"
# FILE.labels.txt beside FILE.tflite, as rarl_tf.export.tflite names it: so
# `predict --tflite=SITE/model.tflite` runs the very model the page runs.
LABELS_FILE = "model.labels.txt"
CONFIG_FILE = "config.json"
# site path -> path under node_modules. The non-threaded Wasm builds only: the threaded one needs
# cross-origin isolation headers that `python -m http.server` does not send, so it never loads.
LITERT_FILES = {
    "litert/core/dist/index.js": "@litertjs/core/dist/index.js",
    # The packages ship no licence file; their package.json names it (Apache-2.0) and the version.
    "litert/core/package.json": "@litertjs/core/package.json",
    "litert/wasm-utils/package.json": "@litertjs/wasm-utils/package.json",
    "litert/wasm-utils/dist/index.js": "@litertjs/wasm-utils/dist/index.js",
    **{
        f"litert/core/wasm/{name}": f"@litertjs/core/wasm/{name}"
        for build in ("internal", "compat_internal", "jspi_internal")
        for name in (f"litert_wasm_{build}.js", f"litert_wasm_{build}.wasm")
    },
}


def litert_sources(node_modules: str) -> dict[str, str]:
    """site path -> the LiteRT.js file to copy. Raises FileNotFoundError (one line saying how
    to install them) if any is missing."""
    sources = {site: os.path.join(node_modules, rel) for site, rel in LITERT_FILES.items()}
    missing = [path for path in sources.values() if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"LiteRT.js is not installed: {missing[0]} is missing (run `npm ci` in {ROOT}, "
            f"which installs the versions package-lock.json pins, or pass --node_modules)"
        )
    return sources


def check_output(output: str, overwrite: bool) -> None:
    """Raises ValueError if `output` exists and not `overwrite` (or is not a folder), or
    PermissionError if its parent cannot be written; before any work."""
    from rarl_tf import atomic

    if os.path.lexists(output):
        if not os.path.isdir(output) or os.path.islink(output):
            raise ValueError(f"--output={output} exists and is not a folder: choose another path")
        if not overwrite:
            raise ValueError(
                f"--output={output} exists (an earlier export): pass --overwrite to replace "
                f"it, or choose another --output"
            )
    atomic.check_writable_file(os.path.abspath(output), f"--output={output}")


def sample_images(model_dir: str, count: int) -> list[tuple[bytes, list[str]]]:
    """Up to `count` images of the model's evaluation split as PNG bytes at their own size, with
    their true labels; none (and a warning) where the split cannot be read here."""
    import numpy as np
    import tensorflow as tf

    from rarl_tf.data import pipeline
    from rarl_tf.data.splits import load_split
    from rarl_tf.model_folder import load_config

    if count <= 0:
        return []
    config = load_config(model_dir)
    try:
        examples = pipeline.decode(load_split(config, "eval").take(count))
        samples = [
            (
                tf.io.encode_png(example["image"]).numpy(),
                [config.class_names[c] for c in np.flatnonzero(example["labels"].numpy() > 0)],
            )
            for example in examples
        ]
    except Exception as err:  # noqa: BLE001 -- any reader's failure: the page works without them
        print(f"warning: no sample images ({type(err).__name__}: {str(err)[:200]})")
        return []
    return samples


def page_config(config, quantization: str, samples) -> dict:
    """config.json: what app.js needs besides the model."""
    from rarl_tf.inference import visualize

    return {
        "image_size": config.model.image_size,
        "num_steps": config.model.num_steps,
        "class_names": list(config.class_names),
        "quantization": quantization,
        "weights": WEIGHTS[quantization],
        "top_k": config.eval.top_k,
        "threshold": config.eval.threshold,
        "max_pixels": config.data.max_pixels,
        "colours": [list(c) for c in visualize.ITERATION_COLOURS],
        "min_side": 384,
        "max_side": visualize.MAX_SIDE,
        "samples": [
            {"file": f"samples/sample{i + 1}.png", "labels": labels}
            for i, (_, labels) in enumerate(samples)
        ],
    }


def model_content(model_dir: str, quantization: str, calibration_images: int) -> bytes:
    """The .tflite bytes as `rarl_tf.export.tflite` writes them: builtin ops only (ValueError
    otherwise), the GPU delegate check printed (a fallback only costs WebGPU: the page then runs
    on WebAssembly, so it does not stop the export)."""
    from rarl_tf.export import tflite

    images = None
    if quantization == "int8":
        images = tflite.training_images(model_dir, calibration_images)
    content = tflite.convert(model_dir, quantization, images)
    bad = tflite.non_builtin_ops(tflite.op_names(content))
    if bad:
        raise ValueError(f"the converted model uses non-builtin ops {bad}; LiteRT.js cannot run it")
    tflite.gpu_check(content, allow_cpu_fallback=True)
    return content


def write_site(site: str, files: dict[str, bytes | str], overwrite: bool) -> None:
    """Writes `files` (site path -> bytes, or the path of a file to copy) as the folder `site`,
    whole: built in a staging folder beside it with the umask's permissions, fsynced, then
    renamed into place, so a failure leaves any earlier site as it was."""
    from rarl_tf import atomic

    parent = os.path.dirname(os.path.abspath(site))
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(site)}.", dir=parent)
    try:
        os.chmod(staging, atomic.folder_mode())  # mkdtemp makes 0700 folders
        for relative, content in files.items():
            path = os.path.join(staging, relative)
            os.makedirs(os.path.dirname(path), mode=atomic.folder_mode(), exist_ok=True)
            if isinstance(content, bytes):
                with open(path, "wb") as f:
                    f.write(content)
            else:
                shutil.copyfile(content, path)
            os.chmod(path, atomic.file_mode())
        atomic.fsync_tree(staging)
        _publish_folder(staging, site, overwrite)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)


def _publish_folder(staging: str, site: str, overwrite: bool) -> None:
    from rarl_tf import atomic

    if os.path.lexists(site):
        if not overwrite:
            raise ValueError(
                f"--output={site} appeared during the export: pass --overwrite to replace it"
            )
        # Two renames: readers see the old site or the new one, never a half-written folder.
        old = tempfile.mkdtemp(
            prefix=f".{os.path.basename(site)}.old.", dir=os.path.dirname(os.path.abspath(site))
        )
        os.rename(site, os.path.join(old, "site"))
        os.rename(staging, site)
        shutil.rmtree(old)
    else:
        os.rename(staging, site)
    atomic.fsync_folder(os.path.dirname(os.path.abspath(site)))


def export(
    model_dir: str,
    output: str,
    quantization: str = "float16",
    samples: int = 4,
    calibration_images: int = 100,
    overwrite: bool = False,
    node_modules: str = os.path.join(ROOT, "node_modules"),
) -> dict:
    """Writes the site (see the module docstring); returns its config.json content.

    Raises:
      ValueError: `output` exists and not `overwrite`; a bad --quantization; non-builtin ops.
      FileNotFoundError: LiteRT.js is not installed (`npm ci`), or `model_dir` has no model.
    """
    import json

    from rarl_tf.export import tflite
    from rarl_tf.model_folder import load_config

    if quantization not in tflite.QUANTIZATIONS:
        raise ValueError(
            f"--quantization={quantization} is not allowed: expected one of {tflite.QUANTIZATIONS}"
        )
    check_output(output, overwrite)
    files: dict[str, bytes | str] = dict(litert_sources(node_modules))
    config = load_config(model_dir)
    files[MODEL_FILE] = model_content(model_dir, quantization, calibration_images)
    found = sample_images(model_dir, samples)
    page = page_config(config, quantization, found)
    for entry, (png, _) in zip(page["samples"], found):
        files[entry["file"]] = png
    files[LABELS_FILE] = ("\n".join(config.class_names) + "\n").encode()
    files[CONFIG_FILE] = json.dumps(page, indent=1).encode()
    for name in PAGE_FILES:
        files[name] = os.path.join(ASSETS, name)
    write_site(output, files, overwrite)
    return page


def main(argv):
    cli.no_arguments(argv)
    if FLAGS.samples < 0:
        raise ValueError(f"--samples={FLAGS.samples} is not allowed: expected an integer >= 0")
    page = export(
        FLAGS.model_dir,
        FLAGS.output,
        FLAGS.quantization,
        FLAGS.samples,
        FLAGS.calibration_images,
        FLAGS.overwrite,
        FLAGS.node_modules,
    )
    print(
        f"Web page written to {FLAGS.output} ({WEIGHTS[page['quantization']]} model, "
        f"{len(page['samples'])} sample images); serve it with: "
        f"python -m http.server -d {FLAGS.output}"
    )


def run():
    """Defines this entry point's flags and runs it (`python -m` and the console script)."""
    from rarl_tf.export import tflite

    rarl_flags.define_model_dir_flag()
    flags.DEFINE_string("output", None, "The folder to write the site to.", required=True)
    flags.DEFINE_enum(
        "quantization", "float16", list(tflite.QUANTIZATIONS), "Post-training quantization."
    )
    flags.DEFINE_integer("samples", 4, "Test images of the evaluation split to bundle.")
    flags.DEFINE_integer("calibration_images", 100, "Training images that calibrate int8.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output folder.")
    flags.DEFINE_string(
        "node_modules",
        os.path.join(ROOT, "node_modules"),
        "Where `npm ci` installed LiteRT.js (@litertjs/core, @litertjs/wasm-utils).",
    )
    cli.run_entry_point(main)


if __name__ == "__main__":
    run()
