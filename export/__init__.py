"""Command-line shortcuts of the checkout: `python -m export.tflite` is
`python -m rarl_tf.export.tflite` (and `rarl-export-tflite`), and so for saved_model, web and
gpu_rules. The code lives in rarl_tf/export/; this folder is not installed (pyproject.toml
installs rarl_tf only), so the wheel puts no top-level `export` package in site-packages."""

import runpy


def forward(name: str, shortcut: str) -> None:
    """Runs rarl_tf.SHORTCUT as `python -m` would: as __main__, with its own sys.argv[0] and
    module (absl's --help reads both). Imported, a shortcut is an error: code imports
    rarl_tf.export."""
    if name != "__main__":
        raise ImportError(f"{shortcut} runs from the command line only: import rarl_tf.{shortcut}")
    runpy.run_module(f"rarl_tf.{shortcut}", run_name="__main__", alter_sys=True)
