"""The work folder of a feature extraction run: one file per finished video, then one dataset.

Layout of the work folder:

* `settings.json`: the CLIP model and sizes the features were made with; a rerun must match it.
* `videos/<video_id>.safetensors`: the features of one finished video. Written to a temporary
  name, flushed to disk and renamed, so a file under its final name is always complete: a run that
  is killed loses at most the videos in flight, and a rerun skips every video that has its file.
* `failures/process-<i>.jsonl` and `done/process-<i>.json`: what each process of the last run
  could not read, and that it has finished.

When every process is done, the main process assembles the files, together with the videos of an
existing dataset in the output folder (an earlier run with the same settings), into one `datasets`
dataset. The new dataset is written beside the output folder and swapped in by renames, so the
output folder always holds a complete dataset: the old one until the new one is whole.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from datasets import Array2D, Array3D, Dataset, Features, Value
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

FEATURE_SUFFIX = ".safetensors"
# The dataset's `info.description` starts with this, followed by the extraction settings as JSON.
SETTINGS_PREFIX = "MIST CLIP video features: "
# The file beside an uploaded features dataset that carries the same settings (parquet keeps no description).
SETTINGS_FILE = "extraction_settings.json"


def write_atomically(path: str, write) -> None:
    """Call `write(temporary_path)`, flush it to disk, then rename it to `path`: a kill at any point
    leaves the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


class FeatureStore:
    """Finished videos of one extraction, as files in `work_dir`."""

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.videos_dir = os.path.join(work_dir, "videos")
        self.failures_dir = os.path.join(work_dir, "failures")
        self.done_dir = os.path.join(work_dir, "done")
        self.settings_path = os.path.join(work_dir, "settings.json")

    # ----- set-up (main process, before the others start) -----

    def prepare(self, settings: dict) -> None:
        """Create the folders, check `settings` against an earlier run, clear the last run's bookkeeping."""
        for folder in (self.videos_dir, self.failures_dir, self.done_dir):
            os.makedirs(folder, exist_ok=True)
        if os.path.exists(self.settings_path):
            with open(self.settings_path) as file:
                earlier = json.load(file)
            if earlier != settings:
                raise ValueError(
                    f"work dir {self.work_dir} holds features made with {earlier}, not {settings}; "
                    "rerun with the same settings or choose another --work-dir"
                )
        else:
            write_atomically(self.settings_path, lambda path: _write_json(path, settings))
        # Leftovers of killed writers and of the last run's processes.
        for name in os.listdir(self.videos_dir):
            if name.endswith(".tmp"):
                os.remove(os.path.join(self.videos_dir, name))
        for folder in (self.failures_dir, self.done_dir):
            for name in os.listdir(folder):
                os.remove(os.path.join(folder, name))

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


def write_text_atomically(path: str, text: str) -> None:
    """`path` holds `text` (UTF-8), written by `write_atomically`."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)

    write_atomically(str(path), write)


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
