"""What every entry point does around its work: clear one-line errors instead of stack traces."""

from __future__ import annotations

import functools
import os
import sys

# Entry points import this before TensorFlow: hide its C++ info/warning chatter (grappler's
# cost-model warnings for CropAndResize on every step) unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
