"""Files every command writes: whole or not at all, with the user's umask, and a plain message on a full disk.

* `write_atomically(path, write)` / `write_text_atomically(path, text)`: written to a temporary name
  beside `path`, flushed and renamed, so a kill or a full disk leaves the old file or the new one.
* `mode_for_new_files()` / `apply_umask(paths)`: the permissions a file created now gets
  (`0o666 & ~umask`). Writers that go through a temporary file (`mkstemp`, safetensors) create it
  0600 whatever the umask; these give the file the mode the user asked for, so that another user,
  a service account or a Space can read it.
* `NotEnoughSpaceError` / `check_free_space` / `is_disk_full`: refuse a write that cannot fit, and
  recognise the errors of one that did not (`ENOSPC`, a quota, safetensors' wording of them).
"""

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_WORDS = ("no space left on device", "disk quota exceeded")


def current_umask() -> int:
    """This process's umask, read without changing it where the system tells (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def mode_for_new_files() -> int:
    """The permissions `open(path, "w")` gives a new file under the current umask (0o644 under 022)."""
    return 0o666 & ~current_umask()


def apply_umask(paths: Iterable[str | os.PathLike]) -> None:
    """Give each file of `paths` the mode a file created now would get (the umask's, not a temp file's 0600)."""
    mode = mode_for_new_files()
    for path in paths:
        os.chmod(path, mode)


class NotEnoughSpaceError(OSError):
    """A write was refused, or failed, for lack of disk space; the message says where and how much."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC


def is_disk_full(error: BaseException) -> bool:
    """True for the errors of a write that ran out of space (`ENOSPC`, a quota, or a library's wording of them)."""
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return True
    return any(words in str(error).lower() for words in DISK_FULL_WORDS)


def free_bytes(path: str | os.PathLike) -> int:
    """Free space of the file system that holds `path` (or its nearest existing parent)."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e6:.2f} MB"


def check_free_space(path: str | os.PathLike, needed: int, what: str) -> None:
    """Raise `NotEnoughSpaceError` naming `what`, `path`, the space `needed` and the space free when it cannot fit."""
    free = free_bytes(path)
    if free < needed:
        raise NotEnoughSpaceError(
            f"{path}: not enough disk space for {what}: needs about {megabytes(needed)}, {megabytes(free)} free"
        )


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(temporary_path)`, flush it to disk, give it the umask's mode, then rename it to `path`: a kill
    or a full disk at any point leaves the old file or the new one, never half of one."""
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        apply_umask([temporary])  # mkstemp made it 0600
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(error, Exception) and not isinstance(error, NotEnoughSpaceError) and is_disk_full(error):
            raise NotEnoughSpaceError(
                f"{path}: the disk is full ({megabytes(free_bytes(folder))} free); nothing was replaced: "
                "free some space and run again"
            ) from error
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """`path` holds `text` (UTF-8), written by `write_atomically`."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)

    write_atomically(path, write)


def may_be_hub_repo_id(entry: str) -> bool:
    """Whether `entry` reads as an `owner/name` Hub repository id rather than a local path (no leading `.`, `/` or
    `~`, one slash, and valid by `huggingface_hub`'s own rules)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if entry.startswith((".", "/", "~")) or entry.count("/") != 1:
        return False
    try:
        validate_repo_id(entry)
    except HFValidationError:
        return False
    return True
