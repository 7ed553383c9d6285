"""Reading `save_to_disk` folders, with a truncated or corrupt Arrow file named in the error."""

from pathlib import Path

import pyarrow as pa
from datasets import Dataset, DatasetDict, load_from_disk

from ..errors import BrokenFileError


def is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").exists() or (path / "state.json").exists()


def load_saved_dataset(path: Path, remedy: str) -> Dataset | DatasetDict:
    """`load_from_disk`, with a truncated or corrupt Arrow file named in a `BrokenFileError`."""
    try:
        return load_from_disk(str(path))
    except Exception as error:  # noqa: BLE001  (pyarrow, json and datasets raise many kinds)
        broken = _first_unreadable_arrow_file(path) or path
        raise BrokenFileError(
            f"{broken}: cannot be read ({type(error).__name__}: {first_line(error)}); the saved dataset in "
            f"{path} is truncated or corrupt: {remedy}"
        ) from error


def _first_unreadable_arrow_file(path: Path) -> Path | None:
    for arrow_file in sorted(path.rglob("*.arrow")):
        try:
            with pa.memory_map(str(arrow_file)) as source:
                pa.ipc.open_stream(source).read_all()
        except (OSError, pa.ArrowInvalid):
            return arrow_file
    return None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
