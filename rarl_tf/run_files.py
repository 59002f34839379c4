"""The files of a model folder: one writer at a time, written whole, read with clear errors.

- One run per folder: training takes an exclusive OS lock (`flock`) on `MODEL_DIR/.lock`. The
  kernel drops it when the process ends, however it ends, so a SIGKILLed run never leaves a
  stale lock behind; a second run on the same folder stops at once naming the first.
- Readers (evaluate, predict, export) take no lock; instead every file they read
  (config.json, metrics.json, model.weights.h5, data_stats.json) is written to a temporary
  file in the same folder and renamed over the old one, so they see the old file or the new
  one, never half of one.
- A file that is there but cannot be read raises `CorruptFile`, naming it and what to do.

Imported by entry points before TensorFlow: nothing here imports it at module level.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
import time

LOCK_FILE = ".lock"
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
    return (f"pid {owner['pid']} on {owner.get('host', '?')}, started "
            f"{owner.get('started', '?')}: {owner.get('command', '?')}")


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
    fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _owner_text(fd)
        os.close(fd)
        raise ModelDirBusy(f"--model_dir={folder} is in use by another run ({owner}); wait for "
                           f"it to finish or stop it, or use another --model_dir") from None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        # Some network file systems have no locks; running unlocked is what happened before.
        print(f"warning: cannot lock {folder} ({err.strerror}); make sure no other run uses it",
              file=sys.stderr, flush=True)
    owner = {"pid": os.getpid(), "host": socket.gethostname(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S"),
             "command": " ".join(sys.argv)[:300]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(owner).encode(), 0)
    _held[key] = fd


def release(folder: str) -> None:
    """Gives up this process's lock on `folder`, if it holds it."""
    fd = _held.pop(os.path.realpath(folder), None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor drops the flock


@contextlib.contextmanager
def _replacing(path: str, suffix: str = ""):
    """Yields a temporary path beside `path`; renames it over `path` if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix,
                                     dir=folder)
    os.close(fd)
    try:
        yield temporary
        os.replace(temporary, path)  # atomic on POSIX: readers see the old or the new file
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` whole (temporary file, fsync, rename).

    Raises:
      OSError: naming `path` (e.g. ENOSPC); `path` itself is left as it was.
    """
    try:
        with _replacing(path) as temporary:
            with open(temporary, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
    except OSError as err:
        # The temporary file's name would mean nothing to the user; the target's does.
        raise OSError(err.errno, err.strerror, path) from None


def write_json(path: str, value, indent: int | None = 2) -> None:
    write_text(path, json.dumps(value, indent=indent))


def save_weights(model, path: str) -> None:
    """`model.save_weights(path)` written whole (Keras wants the `.weights.h5` suffix)."""
    with _replacing(path, suffix=".weights.h5") as temporary:
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
        with _replacing(path, suffix=".keras") as temporary:
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
            f"--model_dir={model_dir} to write it again from the newest checkpoint") from None


def load_trained(model_dir: str, crop_mode: str = "crop_and_resize"):
    """`model.factory.load_trained`, with a corrupt config.json or weights file named."""
    from rarl_tf.config import load_config
    from rarl_tf.model.factory import WEIGHTS_FILE
    from rarl_tf.model.factory import load_trained as load

    load_config(model_dir)  # a corrupt config.json is named before the weights are read
    weights = os.path.join(model_dir, WEIGHTS_FILE)
    if os.path.exists(weights):
        check_weights_file(weights, model_dir)
    return load(model_dir, crop_mode)
