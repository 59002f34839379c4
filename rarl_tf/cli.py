"""What every entry point does around its work: clear one-line errors instead of stack traces."""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys

# Entry points import this before TensorFlow: hide its C++ info/warning chatter (grappler's
# cost-model warnings for CropAndResize on every step) unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A user's mistake: a bad flag value, a missing file or directory.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def no_arguments(argv) -> None:
    """Stops an entry point that takes flags only: absl leaves the program name and any word
    that is not a flag in `argv`; a word there is a mistyped flag (ValueError, exit 2)."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; flags go as --name=value")


class RunFailed(RuntimeError):
    """The run stopped for a reason the message explains (e.g. a diverged loss); exit 1, or
    the instance's `exit_code` (a signal's 128 + N)."""


class Terminated(Exception):
    """SIGTERM arrived (`run_entry_point` turns it into this exception, as Python turns SIGINT
    into KeyboardInterrupt), so the entry point ends with one line and exit 143."""


def _terminated(signum, frame):
    raise Terminated()


def user_errors_exit(main):
    """Wraps an absl `main`: a user error prints `error: ...` and exits with status 2; a run
    that stopped for a stated reason (RunFailed, a full disk) prints it and exits with 1.

    Set RARL_TRACEBACK=1 to see the full traceback instead."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except USER_ERRORS as err:
            if os.environ.get("RARL_TRACEBACK"):
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except RunFailed as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(getattr(err, "exit_code", 1))
        except (KeyboardInterrupt, Terminated) as err:
            # A signal outside a training loop (which saves and names its step itself).
            if os.environ.get("RARL_TRACEBACK"):
                raise
            name, code = ("SIGTERM", 143) if isinstance(err, Terminated) else ("SIGINT", 130)
            print(f"error: stopped by {name}; the files written so far are whole", file=sys.stderr)
            sys.exit(code)
        except OSError as err:
            # A full disk (or quota) while writing a result: files are written to a temporary
            # name and renamed, so the previous version of the file is still whole.
            if err.errno not in (errno.ENOSPC, errno.EDQUOT) or os.environ.get("RARL_TRACEBACK"):
                raise
            print(
                f"error: no space left to write {err.filename or 'a file'} ({err.strerror}); "
                f"the previous files are intact: free some space and run the same command "
                f"again",
                file=sys.stderr,
            )
            sys.exit(1)

    return wrapped


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing with this project's usage-error convention: an unknown flag, a bad
    value, a missing flagfile or a missing required flag prints one `error:` line and exits
    with status 2, as every other user error does (absl's own parser prints `FATAL Flags
    parsing error` and exits 1). Pass it to `app.run` as `flags_parser`."""
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        # One line; absl's flagfile error begins "ERROR:: ", which `error:` already says.
        text = " ".join(str(err).split()).removeprefix("ERROR:: ") or type(err).__name__
        print(f"error: {text} (--helpfull lists the flags)", file=sys.stderr)
        sys.exit(2)


def run_entry_point(main) -> None:
    """`app.run` of an entry point's wrapped `main`, its flags already defined.

    As a console script (`rarl-train`, ...) the program is not the entry module: absl's --help
    prints the docstring of `__main__` and the flags of the module named by sys.argv[0], so both
    are taken from the entry module here and --help reads as under `python -m`."""
    from absl import app, flags

    if main.__module__ != "__main__":
        module = sys.modules[main.__module__]
        sys.modules["__main__"].__doc__ = module.__doc__
        for flag in flags.FLAGS.get_key_flags_for_module(module.__name__):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    signal.signal(signal.SIGTERM, _terminated)
    app.run(user_errors_exit(main), flags_parser=parse_flags)
