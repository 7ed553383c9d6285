"""The work folder of a feature extraction run: one file per finished video, then one dataset.

Layout of the work folder:

* `settings.json`: the CLIP model and sizes the features were made with; a rerun must match it.
* `videos/<video_id>.safetensors`: the features of one finished video. Written to a temporary
  name, flushed to disk and renamed, so a file under its final name is always complete: a run that
  is killed loses at most the videos in flight, and a rerun skips every video that has its file.
* `failures/process-<i>.jsonl` and `done/process-<i>.json`: what each process of the last run
  could not read, and that it has finished.
* `lock`: the run using the folder (pid, host, start time, command); a second run into the same
  folder is refused with those details, a lock whose process died on this machine is taken over.

When every process is done, the main process assembles the files, together with the videos of an
existing dataset in the output folder (an earlier run with the same settings), into one `datasets`
dataset. The new dataset is written beside the output folder and swapped in by renames, so the
output folder always holds a complete dataset: the old one until the new one is whole.
"""

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from datasets import Array2D, Array3D, Dataset, Features, Value
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from processing.file_utils import (
    NotEnoughSpaceError,
    check_free_space,
    is_disk_full,
    megabytes,
    mode_for_new_files,
    write_atomically,
)

FEATURE_SUFFIX = ".safetensors"
# The dataset's `info.description` starts with this, followed by the extraction settings as JSON.
SETTINGS_PREFIX = "MIST CLIP video features: "
# The file beside an uploaded features dataset that carries the same settings (parquet keeps no description).
SETTINGS_FILE = "extraction_settings.json"


class WorkFolderInUse(RuntimeError):
    """Another extraction holds the work folder; the message names it (pid, host, start time, command)."""


def _is_dead(holder: dict) -> bool:
    """True when the run of a lock record is known to be gone: it ran on this machine and its process is not there."""
    if not holder or holder.get("host") != socket.gethostname():
        return False  # another machine's run (a shared folder): only its owner can tell
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


class FeatureStore:
    """Finished videos of one extraction, as files in `work_dir`."""

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.videos_dir = os.path.join(work_dir, "videos")
        self.failures_dir = os.path.join(work_dir, "failures")
        self.done_dir = os.path.join(work_dir, "done")
        self.settings_path = os.path.join(work_dir, "settings.json")
        self.lock_path = os.path.join(work_dir, "lock")

    # ----- set-up (main process, before the others start) -----

    def prepare(self, settings: dict) -> None:
        """Create the folders, check `settings` against an earlier run, clear the last run's bookkeeping.

        The settings of an earlier run that finished no video (refused, or stopped before its first) are
        replaced: nothing made with them is kept, so nothing is lost.
        """
        for folder in (self.videos_dir, self.failures_dir, self.done_dir):
            os.makedirs(folder, exist_ok=True)
        earlier = None
        if os.path.exists(self.settings_path):
            with open(self.settings_path) as file:
                earlier = json.load(file)
        finished = [name for name in os.listdir(self.videos_dir) if name.endswith(FEATURE_SUFFIX)]
        if earlier is not None and earlier != settings and finished:
            differing = sorted(key for key in set(earlier) | set(settings) if earlier.get(key) != settings.get(key))
            made = ", ".join(f"{key}={earlier.get(key)!r}" for key in differing)
            asked = ", ".join(f"{key}={settings.get(key)!r}" for key in differing)
            raise ValueError(
                f"work dir {self.work_dir} holds {len(finished)} videos made with {made}, but this run asks for "
                f"{asked}; rerun with the same settings to resume them, or choose another --work-dir"
            )
        if earlier != settings:
            write_atomically(self.settings_path, lambda path: _write_json(path, settings))
        # Leftovers of killed writers and of the last run's processes.
        for name in os.listdir(self.videos_dir):
            if name.endswith(".tmp"):
                os.remove(os.path.join(self.videos_dir, name))
        for folder in (self.failures_dir, self.done_dir):
            for name in os.listdir(folder):
                os.remove(os.path.join(folder, name))

    # ----- one run at a time -----

    def lock(self, command: str) -> None:
        """Claim the work folder for this run (its main process), or raise `WorkFolderInUse` naming the run that holds
        it. A lock left by a run that died on this machine is taken over."""
        os.makedirs(self.work_dir, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        record["command"] = command
        while True:
            try:
                handle = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode_for_new_files())
            except FileExistsError:
                holder = self._lock_holder()
                if holder is not None and not _is_dead(holder):
                    raise WorkFolderInUse(
                        f"work dir {self.work_dir} is in use by another extraction (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, started {holder.get('started')}: {holder.get('command', '?')}); wait "
                        f"for it to finish or choose another --work-dir (if that run is gone, delete {self.lock_path})"
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.lock_path)  # its run died: take the folder over
                continue
            with os.fdopen(handle, "w") as file:
                json.dump(record, file)
            return

    def unlock(self) -> None:
        holder = self._lock_holder()
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            os.remove(self.lock_path)

    def remove_if_nothing_finished(self) -> None:
        """Delete the work folder when it holds no finished video (a refused or failed run): nothing in it is worth
        keeping, and a corrected command starts clean."""
        finished = os.listdir(self.videos_dir) if os.path.isdir(self.videos_dir) else []
        if any(name.endswith(FEATURE_SUFFIX) for name in finished):
            return  # finished videos: a rerun resumes them
        for folder in (self.videos_dir, self.failures_dir, self.done_dir):
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.settings_path)
        with contextlib.suppress(OSError):
            os.rmdir(self.work_dir)  # only when nothing else is in it (a --work-dir may name a folder of the user's)

    def _lock_holder(self) -> dict | None:
        try:
            with open(self.lock_path) as file:
                return json.load(file)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written by the other run this very moment: it is alive

    # ----- per video -----

    def path(self, video_id: str) -> str:
        return os.path.join(self.videos_dir, video_id + FEATURE_SUFFIX)

    def has(self, video_id: str) -> bool:
        return os.path.exists(self.path(video_id))

    def write(self, video_id: str, frame_features: torch.Tensor, patch_features: torch.Tensor, dtype: str) -> None:
        """Store one video's `frame_features [F, D]` and `patch_features [F, P, D]` as `dtype`."""
        tensors = {
            "frame_features": frame_features.numpy().astype(dtype),
            "patch_features": patch_features.numpy().astype(dtype),
        }
        write_atomically(self.path(video_id), lambda path: save_file(tensors, path, metadata={"video_id": video_id}))

    def read(self, video_id: str) -> dict[str, np.ndarray]:
        return load_file(self.path(video_id))

    # ----- per process -----

    def record_failure(self, process_index: int, source: str, reason: str) -> None:
        with open(os.path.join(self.failures_dir, f"process-{process_index}.jsonl"), "a") as file:
            file.write(json.dumps({"source": source, "reason": reason}) + "\n")

    def mark_done(self, process_index: int, summary: dict) -> None:
        done_path = os.path.join(self.done_dir, f"process-{process_index}.json")
        write_atomically(done_path, lambda path: _write_json(path, summary))

    def summaries(self) -> list[dict]:
        """The summaries of the processes that have finished."""
        summaries = []
        for name in sorted(os.listdir(self.done_dir)):
            if name.endswith(".json"):
                with open(os.path.join(self.done_dir, name)) as file:
                    summaries.append(json.load(file))
        return summaries

    def failures(self) -> list[dict]:
        records = []
        for name in sorted(os.listdir(self.failures_dir)):
            with open(os.path.join(self.failures_dir, name)) as file:
                records += [json.loads(line) for line in file if line.strip()]
        return records

    # ----- assembly (main process, after all are done) -----

    def assemble(
        self, video_ids: Sequence[str], output_dir: str, settings: dict, existing: Dataset | None = None
    ) -> tuple[int, list[dict]]:
        """Write the finished videos among `video_ids`, plus the rows of `existing` (the dataset already in
        `output_dir`) that are not recomputed, as one dataset to `output_dir`, sorted by video id.

        Returns the number of rows and the videos whose file turned out unreadable (those files are
        deleted, so a rerun computes them again). Without any row nothing is written.
        """
        finished = [video_id for video_id in video_ids if self.has(video_id)]
        if not finished and existing is not None:
            return len(existing), []  # nothing new: the dataset in place stays as it is
        kept_rows = {}
        if existing is not None:
            finished_set = set(finished)
            kept_rows = {
                str(video_id): row for row, video_id in enumerate(existing["video_id"]) if video_id not in finished_set
            }
        unreadable = []
        shapes = None
        for video_id in finished:
            if (tensors := self._read_or_drop(video_id, unreadable)) is not None:
                shapes = tensors["frame_features"].shape, tensors["patch_features"].shape
                break
        if shapes is None and kept_rows:
            shapes = existing.features["frame_features"].shape, existing.features["patch_features"].shape
        if shapes is None:
            return 0, unreadable
        (num_frames, hidden_size), num_patches, dtype = shapes[0], shapes[1][1], settings["dtype"]
        features = Features(
            {
                "video_id": Value("string"),
                "frame_features": Array2D(shape=(num_frames, hidden_size), dtype=dtype),
                "patch_features": Array3D(shape=(num_frames, num_patches, hidden_size), dtype=dtype),
            }
        )
        order = sorted(set(finished) | set(kept_rows))
        old_rows = existing.with_format("numpy") if existing is not None else None

        def rows() -> Iterator[dict]:
            for video_id in order:
                if video_id in kept_rows:
                    row = old_rows[kept_rows[video_id]]
                    yield {
                        "video_id": video_id,
                        "frame_features": row["frame_features"],
                        "patch_features": row["patch_features"],
                    }
                elif (tensors := self._read_or_drop(video_id, unreadable)) is not None:
                    yield {"video_id": video_id, **tensors}

        output_dir = os.path.normpath(output_dir)
        staging = output_dir + ".assembling"
        # The rows are written twice (the generator's Arrow cache, then the saved copy) before the old dataset goes.
        row_bytes = np.dtype(dtype).itemsize * num_frames * hidden_size * (1 + num_patches)
        needed = 2 * row_bytes * len(order)
        check_free_space(os.path.dirname(output_dir) or ".", needed, f"the features dataset of {len(order)} videos")
        cache = tempfile.mkdtemp(dir=self.work_dir, prefix="arrow-cache-")
        try:
            # A fresh cache folder: the generator's fingerprint cannot match an older, stale build.
            dataset = Dataset.from_generator(rows, features=features, cache_dir=cache)
            dataset.info.description = SETTINGS_PREFIX + json.dumps(settings, sort_keys=True)
            shutil.rmtree(staging, ignore_errors=True)
            dataset.save_to_disk(staging)
            num_rows = len(dataset)
            del dataset
            swap_in(staging, output_dir)
        except Exception as error:
            if not is_disk_full(error) or isinstance(error, NotEnoughSpaceError):
                raise
            shutil.rmtree(staging, ignore_errors=True)
            raise NotEnoughSpaceError(
                f"{output_dir}: the disk filled up while writing the features dataset (it needs about "
                f"{megabytes(needed)} while it is written); the dataset already there is unchanged and the finished "
                f"videos stay in {self.work_dir}: free space and rerun to assemble them"
            ) from error
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        return num_rows, unreadable

    def _read_or_drop(self, video_id: str, unreadable: list[dict]) -> dict[str, np.ndarray] | None:
        """The video's features, or None after deleting an unreadable file (a rerun recomputes it)."""
        try:
            return self.read(video_id)
        except (SafetensorError, OSError) as error:
            unreadable.append({"source": self.path(video_id), "reason": f"unreadable feature file ({error})"})
            os.remove(self.path(video_id))
            return None


def _write_json(path: str, value) -> None:
    with open(path, "w") as file:
        json.dump(value, file, indent=2, sort_keys=True)


def swap_in(new_dir: str, target_dir: str) -> None:
    """Replace `target_dir` by `new_dir` with renames: a kill at any point leaves a complete dataset at
    `target_dir` or at `target_dir.previous` (which `restore_interrupted_swap` moves back)."""
    previous = target_dir + ".previous"
    if os.path.exists(target_dir):
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(target_dir, previous)
    os.replace(new_dir, target_dir)
    shutil.rmtree(previous, ignore_errors=True)


def restore_interrupted_swap(target_dir: str) -> None:
    """Undo a `swap_in` that was killed between its two renames (the old dataset comes back)."""
    previous = target_dir + ".previous"
    if os.path.isdir(previous):
        if os.path.exists(target_dir):
            shutil.rmtree(previous)  # the swap finished; only the clean-up was interrupted
        else:
            os.replace(previous, target_dir)
