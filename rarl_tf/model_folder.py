"""The files of a model folder: one writer at a time, written whole, read with clear errors.

- One run per folder: training takes an exclusive OS lock (`flock`) on `MODEL_DIR/.lock`. The
  kernel drops it when the process ends, however it ends, so a SIGKILLed run never leaves a
  stale lock behind; a second run on the same folder stops at once naming the first.
- Readers (evaluate, predict, export) take no lock; instead every file they read
  (config.json, metrics.json, model.weights.h5, data_stats.json) is written to a temporary
  file in the same folder, fsynced, given the permissions the user's umask gives a new file
  (0644 under umask 022) and renamed over the old one (the folder fsynced after), so they see
  the old file or the new one, never half of one, and a crash cannot leave an empty file.
  Every file the project writes (tools and exporters included) goes through `replacing_all`.
- The lock file is opened with O_NOFOLLOW: a `.lock` symlink is refused, not followed.
- A file that is there but cannot be read raises `CorruptFile`, naming it and what to do.

Imported by entry points before TensorFlow: nothing here imports it at module level
(rarl_tf.config.experiment, imported here, imports only the standard library).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
import time

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


def umask() -> int:
    """The process's umask, read without changing it where /proc allows (os.umask sets it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """What `open(path, "w")` would give a new file: 0644 under umask 022."""
    return 0o666 & ~umask()


def folder_mode() -> int:
    """What `os.makedirs` would give a new folder: 0755 under umask 022."""
    return 0o777 & ~umask()


def fsync_folder(folder: str) -> None:
    """Makes a rename or a new entry in `folder` durable (a crash cannot undo it)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # e.g. a file system that cannot open folders; the rename itself still happened
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def fsync_tree(path: str) -> None:
    """fsyncs the file `path`, or every file and folder under the folder `path`."""
    if not os.path.isdir(path):
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        return
    for folder, _, names in os.walk(path):
        for name in names:
            fsync_tree(os.path.join(folder, name))
        fsync_folder(folder)


def _temporary_beside(path: str, suffix: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=folder
    )
    os.close(fd)
    # mkstemp makes 0600 files: others (TF Serving as another user, a colleague) could not
    # read the result. A file written in place would have had the umask's mode.
    os.chmod(temporary, file_mode())
    return temporary


def _publish(temporary: str, path: str, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, path)  # atomic on POSIX: readers see the old or the new file
    else:
        os.link(temporary, path)  # atomic, and fails with FileExistsError instead of replacing
        os.remove(temporary)


@contextlib.contextmanager
def replacing_all(paths: list[str], suffixes: list[str] | None = None, overwrite: bool = True):
    """Yields a temporary path beside each of `paths`; if the block succeeds, each is fsynced,
    given the umask's permissions and renamed over its target, in order (a group of files
    written together, e.g. a model and its labels: a failure while writing leaves every target
    as it was). With `overwrite=False`, FileExistsError (naming it) if any target exists.
    """
    suffixes = suffixes or [""] * len(paths)
    temporaries = []
    try:
        for path, suffix in zip(paths, suffixes):
            temporaries.append(_temporary_beside(path, suffix))
        yield temporaries
        for temporary in temporaries:
            fsync_tree(temporary)
        if not overwrite:
            for path in paths:
                if os.path.lexists(path):
                    raise FileExistsError(errno.EEXIST, "exists", path)
        for temporary, path in zip(temporaries, paths):
            _publish(temporary, path, overwrite)
        for folder in sorted({os.path.dirname(os.path.abspath(p)) for p in paths}):
            fsync_folder(folder)
    finally:
        for temporary in temporaries:
            if os.path.exists(temporary):
                os.remove(temporary)


@contextlib.contextmanager
def _replacing(path: str, suffix: str = "", overwrite: bool = True):
    """Yields a temporary path beside `path`; the block writes it, and it replaces `path`
    whole (`replacing_all`) if the block succeeds."""
    with replacing_all([path], [suffix], overwrite) as (temporary,):
        yield temporary


def write_bytes(path: str, data: bytes, overwrite: bool = True) -> None:
    """Writes `data` to `path` whole (temporary file, fsync, rename; the umask's permissions).

    Raises:
      OSError: naming `path` (e.g. ENOSPC); `path` itself is left as it was.
      FileExistsError: `overwrite` is False and `path` exists.
    """
    try:
        with _replacing(path, overwrite=overwrite) as temporary:
            with open(temporary, "wb") as f:
                f.write(data)
    except OSError as err:
        # The temporary file's name would mean nothing to the user; the target's does.
        raise type(err)(err.errno, err.strerror, path) from None


def write_text(path: str, text: str, overwrite: bool = True) -> None:
    """Writes `text` (UTF-8) to `path` whole; see `write_bytes`."""
    write_bytes(path, text.encode("utf-8"), overwrite)


def save_image(image, path: str, overwrite: bool = True) -> None:
    """`image.save(path)` (a PIL image; format from `path`'s suffix) written whole."""
    suffix = os.path.splitext(path)[1]
    try:
        with _replacing(path, suffix=suffix, overwrite=overwrite) as temporary:
            image.save(temporary)
    except OSError as err:
        raise type(err)(err.errno, err.strerror, path) from None


def check_writable_folder(folder: str, what: str) -> None:
    """Raises PermissionError unless `folder` exists and this process can write in it, so a run
    that would end by writing there fails before its work, not after.

    Args:
      what: how the user gave it, e.g. "--output=m.json", named in the message.
    """
    if not os.path.isdir(folder):
        raise PermissionError(
            f"{what} cannot be written: the folder {folder} does not exist "
            f"(create it first, or choose another path)"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} cannot be written: no permission to write in {folder}")


def check_writable_file(path: str, what: str) -> None:
    """`check_writable_folder` for the folder the file `path` goes in; a folder at `path`
    itself is refused (ValueError) too, as the write would fail there after the work."""
    if os.path.isdir(path):
        raise ValueError(f"{what} is a folder, not a file: give the file's name")
    check_writable_folder(os.path.dirname(os.path.abspath(path)), what)


def check_folder_can_be(folder: str, what: str) -> None:
    """ValueError unless `folder` is a folder this process can write in or can make: a file
    there, a file above it or an unwritable folder above it is named. Nothing is created, so
    a command checks this before its work and makes the folder after."""
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise ValueError(f"{what} is a file, not a folder: give a folder")
    above = os.path.abspath(folder)
    while not os.path.isdir(above):
        parent = os.path.dirname(above)
        if os.path.lexists(above) or parent == above:
            raise ValueError(f"{what} cannot be made: {above} is not a folder")
        above = parent
    if not os.access(above, os.W_OK | os.X_OK):
        raise ValueError(f"{what} cannot be written: no permission to write in {above}")


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
            f"--model_dir={model_dir} to write it again from the newest checkpoint"
        ) from None


def save_config(config: ExperimentConfig, model_dir: str) -> None:
    """Writes `model_dir/config.json` whole (a reader never sees half of it)."""
    os.makedirs(model_dir, exist_ok=True)
    write_text(os.path.join(model_dir, CONFIG_FILE), config.to_json())


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
