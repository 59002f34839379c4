"""The files of a model folder: their names, one writer at a time, the model loaded with clear
errors (`load_trained`, the one loader).

- One run per folder: training takes an exclusive OS lock (`flock`) on `MODEL_DIR/.lock`. The
  kernel drops it when the process ends, however it ends, so a SIGKILLed run never leaves a
  stale lock behind; a second run on the same folder stops at once naming the first.
- Readers (evaluate, predict, export) take no lock; instead every file they read
  (config.json, metrics.json, model.weights.h5, data_stats.json) is written whole
  (`rarl_tf/atomic.py`), so they see the old file or the new one, never half of one.
- The lock file is opened with O_NOFOLLOW: a `.lock` symlink is refused, not followed.
- A file that is there but cannot be read raises `CorruptFile`, naming it and what to do.

Imported by entry points before TensorFlow: nothing here imports it at module level
(rarl_tf.atomic and rarl_tf.config.experiment, imported here, import only the standard library).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import socket
import sys
import time

from rarl_tf import atomic
from rarl_tf.config.experiment import ExperimentConfig

LOCK_FILE = ".lock"
# The files and folders of a model folder, named here only.
CONFIG_FILE = "config.json"
# The trained weights, read by `load_trained`.
WEIGHTS_FILE = "model.weights.h5"
# The whole model (architecture and weights) for `keras.saving.load_model`, written by training.
KERAS_FILE = "model.keras"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
CHECKPOINT_DIR = "checkpoints"
# Counts of the training split's labeled images (cached beside the checkpoints).
DATA_STATS_FILE = "data_stats.json"
# Folders this process has locked: realpath -> the open lock file's descriptor. Locks are kept
# until the process ends (or `release`): train.py evaluates and writes metrics.json under it.
_held: dict[str, int] = {}


class ModelDirBusy(RuntimeError):
    """Another process holds the folder's lock."""


class CorruptFile(ValueError):
    """A run's file is there but cannot be read (truncated, or not what it should be)."""


def _owner_text(fd: int) -> str:
    try:
        owner = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, OSError):
        owner = {}
    if "pid" not in owner:
        return "another process (it has not recorded itself yet)"
    return (
        f"pid {owner['pid']} on {owner.get('host', '?')}, started "
        f"{owner.get('started', '?')}: {owner.get('command', '?')}"
    )


def acquire(folder: str) -> None:
    """Takes the exclusive lock of `folder` (created if needed) for this process.

    Re-entrant within a process. Held until the process ends or `release(folder)`.

    Raises:
      ModelDirBusy: another process holds it (the message names that process).
    """
    key = os.path.realpath(folder)
    if key in _held:
        return
    os.makedirs(folder, exist_ok=True)
    # The lock file is never deleted: deleting it would let two runs lock two different files.
    # O_NOFOLLOW: a `.lock` symlink planted in a shared folder would otherwise make this run
    # truncate and write whatever file it points at.
    path = os.path.join(folder, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        raise PermissionError(
            f"{path} is a symbolic link, not this folder's lock file: remove "
            f"it (check what it points at), or use another --model_dir"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _owner_text(fd)
        os.close(fd)
        raise ModelDirBusy(
            f"--model_dir={folder} is in use by another run ({owner}); wait for "
            f"it to finish or stop it, or use another --model_dir"
        ) from None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        # Some network file systems have no locks; running unlocked is what happened before.
        print(
            f"warning: cannot lock {folder} ({err.strerror}); make sure no other run uses it",
            file=sys.stderr,
            flush=True,
        )
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv)[:300],
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(owner).encode(), 0)
    _held[key] = fd


def release(folder: str) -> None:
    """Gives up this process's lock on `folder`, if it holds it."""
    fd = _held.pop(os.path.realpath(folder), None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor drops the flock


def save_weights(model, path: str) -> None:
    """`model.save_weights(path)` written whole (Keras wants the `.weights.h5` suffix)."""
    with atomic.replacing(path, suffix=".weights.h5") as temporary:
        model.save_weights(temporary)


def save_keras(model, path: str) -> None:
    """`model.save(path)`, a `.keras` archive that `keras.saving.load_model` restores (import
    `rarl_tf.model.rarl` first so its classes are registered), written whole. The archive
    records `backbone_weights="none"`: its own weights replace the backbone's, so loading it
    downloads nothing."""
    original = getattr(model, "backbone_weights", None)
    if original is not None:
        model.backbone_weights = "none"
    try:
        with atomic.replacing(path, suffix=".keras") as temporary:
            model.save(temporary)
    finally:
        if original is not None:
            model.backbone_weights = original


def check_weights_file(path: str, model_dir: str) -> None:
    """Raises CorruptFile unless every array of the HDF5 file `path` can be read."""
    import h5py

    def read(_, item):
        if isinstance(item, h5py.Dataset):
            item[()]

    try:
        with h5py.File(path, "r") as f:
            f.visititems(read)
    except Exception as err:  # h5py raises OSError, KeyError, ValueError... # noqa: BLE001
        raise CorruptFile(
            f"{path} is truncated or not a Keras weights file ({type(err).__name__}: {err}); "
            f"rerun `python -m rarl_tf.train` with the same flags and "
            f"--model_dir={model_dir} to write it again from the newest checkpoint"
        ) from None


def save_config(config: ExperimentConfig, model_dir: str) -> None:
    """Writes `model_dir/config.json` whole (a reader never sees half of it)."""
    os.makedirs(model_dir, exist_ok=True)
    atomic.write_text(os.path.join(model_dir, CONFIG_FILE), config.to_json())


def check_resumes(config: ExperimentConfig, model_dir: str) -> None:
    """ValueError unless `model_dir` is new or holds a run of `config` (its class names aside,
    which come from the data): a resumed run must ask for the same experiment."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.exists(path):
        saved = load_config(model_dir)
        if dataclasses.replace(saved, class_names=config.class_names) != config:
            raise ValueError(
                f"{model_dir} holds a run with a different configuration; use a new "
                f"--model_dir, or the same flags to resume (saved config: {path})"
            )


def load_config(model_dir: str) -> ExperimentConfig:
    """The run configuration in `model_dir/config.json`; FileNotFoundError or CorruptFile,
    naming the file and what to do, where it is missing or unreadable."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --model_dir must be a directory written by "
            f"`python -m rarl_tf.train`"
        )
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read().decode("utf-8"))
        return ExperimentConfig.from_dict(raw)
    # Truncated or garbled JSON, or JSON that is not a config (wrong keys, types or shape).
    except (ValueError, TypeError, AttributeError) as err:
        raise CorruptFile(
            f"{path} is not a readable run configuration ({err}); it is written by "
            f"`python -m rarl_tf.train`: restore it from a copy, or delete it and "
            f"rerun that command with the run's exact flags to write it again "
            f"(the checkpoints are kept)"
        ) from None


def load_trained(model_dir: str, crop_mode: str = "crop_and_resize"):
    """The model trained in `model_dir` and its config: (RARLModel, ExperimentConfig). A missing
    or corrupt config.json or weights file is named (FileNotFoundError, CorruptFile) before
    TensorFlow reads anything."""
    from rarl_tf.model.factory import build_model

    config = load_config(model_dir)
    path = os.path.join(model_dir, WEIGHTS_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: training in {model_dir} has not finished "
            f"(rerun `python -m rarl_tf.train --model_dir={model_dir}` "
            f"to resume)"
        )
    check_weights_file(path, model_dir)
    model = build_model(
        config.model,
        len(config.class_names),
        seed=config.train.seed,
        crop_mode=crop_mode,
        backbone_weights="none",
    )
    try:
        model.load_weights(path)
    except (ValueError, KeyError) as err:
        # Keras names the layers (an 11-line message), not the two files that disagree.
        raise CorruptFile(
            f"{path} does not hold the weights of the model that "
            f"{os.path.join(model_dir, CONFIG_FILE)} describes ({_first_line(err)}): the two "
            f"files are of different runs; restore "
            f"the pair from one run, or rerun training with that run's flags"
        ) from None
    return model, config


def _first_line(err: Exception) -> str:
    """Keras's line naming a layer and what it expected, else the message's first line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    layer = [line for line in lines if line.startswith("Layer '")]
    return (layer or lines or [type(err).__name__])[0][:300]
