"""What can be wrong with the files and folders a command is given, as one-line messages.

Two kinds, so that the command line can tell the user whether to change the command or the files:

* `UsageError` (a `ValueError`): the command names something unusable: a path that does not exist,
  a folder of the wrong kind, settings that contradict what is already on disk. `mist` exits with 2.
* `Failure` (a `RuntimeError`): the command is right but the work could not be done. Its subclass
  `BrokenFileError`: the path is right but what is in it cannot be read (an empty questions file, a
  truncated Arrow file, a model folder without weights). `mist` exits with 1; with 130 for
  `Interrupted` (Ctrl-C, reported with what to run to continue).

Every message starts with the file or folder and says what is wrong. Library functions name only the
path or value; the command that took it from a flag adds the flag (`named_by`).
"""

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id


def is_hub_id(name) -> bool:
    """Whether `name` can be a Hub repository id (`name` or `owner/name`), by `huggingface_hub`'s own rules."""
    try:
        validate_repo_id(str(name))
    except HFValidationError:
        return False
    return True


class UsageError(ValueError):
    """The command line names something that cannot be used (exit status 2)."""


class Failure(RuntimeError):
    """The command line is right but the work could not be done, e.g. an upload failed (exit status 1)."""


class BrokenFileError(Failure):
    """A file or folder exists but its content cannot be used (exit status 1)."""


class Interrupted(Failure):
    """The user stopped the work (Ctrl-C); the message says what is kept and how to continue (exit status 130)."""

    exit_status = 130  # the shell's code for a run stopped by SIGINT


def is_local(name_or_path: str | os.PathLike) -> bool:
    """True when `name_or_path` exists on this machine (file or folder)."""
    return Path(name_or_path).expanduser().exists()


@contextmanager
def named_by(flag: str):
    """`with named_by("--features"):` prefixes `flag` to the `UsageError`s raised inside, whose messages start
    with the value that flag gave: `--features ./x: no such file or folder`."""
    try:
        yield
    except UsageError as error:
        raise UsageError(f"{flag} {error}") from error


def check_local_or_hub(name_or_path: str) -> str:
    """`"local"` for an existing path, `"hub"` for a possible Hub repository id.

    Raises `UsageError` for a path that cannot be a Hub id and does not exist (`./out`, `/data/x`,
    `a/b/c`), so that a mistyped folder is not reported as an unreachable Hub repository.
    """
    if is_local(name_or_path):
        return "local"
    if not is_hub_id(name_or_path):
        raise UsageError(f"{name_or_path}: no such file or folder{_nearest_existing_hint(name_or_path)}")
    return "hub"


def hub_failure(name_or_path: str, what: str, error: BaseException) -> UsageError:
    """The error for a name that is not a local path and could not be loaded from the Hub."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return UsageError(
        f"{name_or_path}: no such local folder, and no {what} on the Hub by that id could be loaded "
        f"({type(error).__name__}: {reason}){_nearest_existing_hint(name_or_path)}"
    )


def _nearest_existing_hint(name_or_path) -> str:
    """`" (out/ exists: is the name mistyped?)"` when a parent folder of the path exists."""
    path = Path(name_or_path).expanduser()
    for parent in path.parents:
        if str(parent) not in (".", "") and parent.is_dir():
            entries = sorted(entry.name for entry in parent.iterdir() if not entry.name.startswith("."))[:8]
            listing = ", ".join(entries) if entries else "nothing"
            return f"; {parent}/ exists and holds: {listing}"
    return ""


class ReportedErrors:
    """`with ReportedErrors(prog, debug) as outcome:` turns the errors a command expects into one line on
    stderr and an exit status in `outcome.status` (2: `usage` errors, change the command; 1: `failures`,
    a file or the work failed; 130: Ctrl-C, with `interrupted`, what is kept and how to go on); with `debug` they
    propagate with their traceback."""

    def __init__(
        self,
        prog: str,
        debug: bool,
        usage: tuple = (ValueError,),
        failures: tuple = (Failure, OSError),
        interrupted: str | None = None,
    ):
        self.prog, self.debug, self.usage, self.failures = prog, debug, usage, failures
        self.interrupted = interrupted
        self.status: int | None = None

    def __enter__(self) -> "ReportedErrors":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None or self.debug:
            return False
        if isinstance(error, KeyboardInterrupt):
            error = Interrupted("interrupted" + (f"; {self.interrupted}" if self.interrupted else ""))
            self.status = Interrupted.exit_status
        elif isinstance(error, self.usage):
            self.status = 2
        elif isinstance(error, self.failures):
            self.status = getattr(error, "exit_status", 1)
        else:
            return False
        print(f"{self.prog}: {' '.join(str(error).split())}", file=sys.stderr)
        return True
