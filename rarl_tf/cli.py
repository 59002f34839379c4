"""What every entry point does around its work: clear one-line errors instead of stack traces."""

from __future__ import annotations

import functools
import sys

# A user's mistake: a bad flag value, a missing file or directory.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def user_errors_exit(main):
    """Wraps an absl `main`: a user error prints `error: ...` and exits with status 2."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except USER_ERRORS as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapped
