"""Files written whole: a temporary file beside the target, fsynced, given the permissions the
user's umask gives a new file (0644 under umask 022), renamed over the target, the folder
fsynced after. A reader sees the old file or the new one, never half of one, and a crash
cannot leave an empty file. Every file the project writes (training, evaluation, the
exporters, the tools) goes through `replacing_all`. And the checks that a path can be written,
made before a command's work so that it fails before the work rather than after.

Standard library only: entry points import it before TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile


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
def replacing(path: str, suffix: str = "", overwrite: bool = True):
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
        with replacing(path, overwrite=overwrite) as temporary:
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
        with replacing(path, suffix=suffix, overwrite=overwrite) as temporary:
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
