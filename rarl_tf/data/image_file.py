"""Reading an image file's bytes: regular files only, so a FIFO or a device never blocks a run.

`open(path)` on a FIFO waits for a writer that may never come, and reading a character device
(/dev/zero, /dev/urandom) never ends. The file is opened non-blocking and checked with fstat
on the open descriptor (not a stat before the open, which a swapped path would defeat); only a
regular file is read.
"""

from __future__ import annotations

import errno
import os
import stat

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str) -> int:
    """A read-only descriptor of the regular file `path` (symbolic links followed).

    Raises:
      ValueError: naming `path` and what it is, if it is missing or not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ValueError(f"cannot read image {path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"cannot read image {path}: it is a directory") from None
    except OSError as err:
        if err.errno == errno.ENXIO:  # a FIFO or socket with no other end
            raise ValueError(f"cannot read image {path}: not a regular file (skipped)") from None
        raise ValueError(f"cannot read image {path}: {err.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError(
            f"cannot read image {path}: it is {_kind(mode)}, not a regular file (skipped)"
        )
    os.set_blocking(fd, True)
    return fd


def read_bytes(path: str) -> bytes:
    """The whole content of the regular file `path` (ValueError otherwise; see `open_regular`)."""
    with os.fdopen(open_regular(path), "rb") as f:
        return f.read()


def problem(path: str) -> str | None:
    """Why `path` cannot be read as an image file ("missing image", "a FIFO ..."), or None."""
    if not os.path.lexists(path):
        return "missing image"
    try:
        os.close(open_regular(path))
    except ValueError as err:
        return str(err).split(": ", 1)[-1]
    return None
