"""Training checkpoints that survive damage: unreadable ones are skipped, failed writes stop.

- Restoring tries the checkpoints newest first (`ckpt-N` by N, read from the folder itself, so
  a damaged `checkpoint` index file does not matter). One that cannot be read (truncated,
  bit-flipped: TensorFlow checks each tensor's CRC) is skipped with a warning that names it and
  the one used instead; the chief moves the unreadable files to `checkpoints/unreadable/`, so a
  later save at that step is not mistaken for them.
- A save that fails (a full disk: ENOSPC reaches Python as ResourceExhaustedError) removes what
  it wrote of itself and raises `CheckpointWriteFailed`; the previous checkpoints are untouched
  (TensorFlow writes a checkpoint's files, then its index entry), so the same command resumes
  from the newest of them once there is space.
"""

from __future__ import annotations

import glob
import os
import re
import shutil

import tensorflow as tf

from rarl_tf.model_folder import CorruptFile

UNREADABLE_DIR = "unreadable"


class CheckpointWriteFailed(RuntimeError):
    """A checkpoint could not be written; the message says what is kept and what to do."""


def candidates(directory: str) -> list[str]:
    """Checkpoint prefixes `directory/ckpt-N` that have an index file, newest (largest N) first."""
    numbered = []
    for index in glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            numbered.append((int(match.group(1)), index[: -len(".index")]))
    return [prefix for _, prefix in sorted(numbered, reverse=True)]


def _files_of(prefix: str) -> list[str]:
    # ckpt-N.index, ckpt-N.data-*-of-*, and the temporary folder a failed save may leave.
    escaped = glob.escape(prefix)
    return glob.glob(escaped + ".*") + glob.glob(escaped + "_temp*")


def _write_index(directory: str, kept: list[str]) -> None:
    """Rewrites `directory/checkpoint` (CheckpointManager's index) to list `kept`, newest first."""
    # Oldest first, as CheckpointManager keeps them; the newest is the one to resume from.
    tf.compat.v1.train.update_checkpoint_state(
        directory, kept[0], all_model_checkpoint_paths=kept[::-1]
    )


def _move_aside(directory: str, prefixes: list[str], kept: list[str]) -> None:
    """Moves the files of `prefixes` to `directory/unreadable/`; rewrites the index file."""
    aside = os.path.join(directory, UNREADABLE_DIR)
    os.makedirs(aside, exist_ok=True)
    for prefix in prefixes:
        for path in _files_of(prefix):
            os.replace(path, os.path.join(aside, os.path.basename(path)))
    _write_index(directory, kept)


def _index_is_readable(directory: str) -> bool:
    # A garbled index is logged and read as None (or raises, depending on the damage).
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception:  # noqa: BLE001
        return False
    return state is not None and bool(state.model_checkpoint_path)


def restore_newest_readable(
    checkpoint: tf.train.Checkpoint, directory: str, owner: bool = True
) -> str | None:
    """Restores the newest checkpoint in `directory` that can be read; returns its prefix.

    Args:
      owner: this process writes `directory` (the chief): it moves unreadable checkpoints
        aside. Other workers only read.

    Returns:
      The restored prefix, or None when there is no checkpoint (a new run).

    Raises:
      CorruptFile: there are checkpoints, and none of them can be restored.
    """
    found = candidates(directory)
    for position, prefix in enumerate(found):
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
        # A damaged file reaches Python as several unrelated types (DataLossError for a bad
        # CRC, IndexError for a short read, ValueError, ...): any of them means "unusable".
        except Exception as err:  # noqa: BLE001
            reason = (getattr(err, "message", None) or str(err) or "").splitlines()
            reason = f"{type(err).__name__}: {reason[0][:300] if reason else ''}"
            print(
                f"warning: checkpoint {prefix} cannot be read ({reason}); trying the one before it",
                flush=True,
            )
            continue
        if position:
            print(
                f"warning: resuming from the older checkpoint {prefix}: the {position} newer "
                f"one(s) could not be read"
                + (
                    f" and were moved to {os.path.join(directory, UNREADABLE_DIR)}" if owner else ""
                ),
                flush=True,
            )
            if owner:
                _move_aside(directory, found[:position], found[position:])
        elif owner and not _index_is_readable(directory):
            _write_index(directory, found)
        return prefix
    if found:
        raise CorruptFile(
            f"none of the {len(found)} checkpoints in {directory} can be read "
            f"(see the warnings above): move that folder away to start the run "
            f"over, or restore it from a copy"
        )
    return None


def save(manager: tf.train.CheckpointManager, step: int) -> str:
    """`manager.save(checkpoint_number=step)`; on failure removes the partial files of this
    checkpoint and raises CheckpointWriteFailed naming the checkpoint that is kept."""
    kept = manager.latest_checkpoint
    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as err:
        prefix = os.path.join(manager.directory, f"ckpt-{step}")
        for path in _files_of(prefix):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
        reason = getattr(err, "message", None) or str(err)
        size = sum(os.path.getsize(p) for p in _files_of(kept)) if kept else 0
        raise CheckpointWriteFailed(
            f"could not write checkpoint {prefix} at step {step} ({reason.splitlines()[-1]}); "
            f"training stopped. The last good checkpoint {kept or '(none yet)'} is intact: free "
            f"some space (a checkpoint takes {size / 1e6:.1f} MB) and run the same command "
            f"to resume from it"
        ) from None
