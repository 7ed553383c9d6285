"""The work folder of a feature extraction run: one file per finished video, then one dataset.

Layout of the work folder:

* `settings.json`: the CLIP model and sizes the features were made with; a rerun must match it.
* `videos/<video_id>.safetensors`: the features of one finished video. Written to a temporary
  name, flushed to disk and renamed, so a file under its final name is always complete: a run that
  is killed loses at most the videos in flight, and a rerun skips every video that has its file.
* `failures/process-<i>.jsonl` and `done/process-<i>.json`: what each process of the last run
  could not read, and that it has finished.

When every process is done, the main process assembles the files into a `datasets` dataset.
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


def _write_atomically(path: str, write) -> None:
    """Call `write(temporary_path)`, flush it to disk, then rename it to `path`."""
    folder = os.path.dirname(path)
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
            _write_atomically(self.settings_path, lambda path: _write_json(path, settings))
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
        _write_atomically(self.path(video_id), lambda path: save_file(tensors, path, metadata={"video_id": video_id}))

    def read(self, video_id: str) -> dict[str, np.ndarray]:
        return load_file(self.path(video_id))

    # ----- per process -----

    def record_failure(self, process_index: int, source: str, reason: str) -> None:
        with open(os.path.join(self.failures_dir, f"process-{process_index}.jsonl"), "a") as file:
            file.write(json.dumps({"source": source, "reason": reason}) + "\n")

    def mark_done(self, process_index: int, summary: dict) -> None:
        done_path = os.path.join(self.done_dir, f"process-{process_index}.json")
        _write_atomically(done_path, lambda path: _write_json(path, summary))

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

    def assemble(self, video_ids: Sequence[str], output_dir: str, settings: dict) -> tuple[int, list[dict]]:
        """Write the finished videos among `video_ids` as a dataset to `output_dir` (replacing it).

        Returns the number of rows and the videos whose file turned out unreadable (those files are
        deleted, so a rerun computes them again). Without any finished video nothing is written.
        """
        finished = [video_id for video_id in video_ids if self.has(video_id)]
        unreadable = []
        hidden_size = None
        for video_id in finished:
            if (tensors := self._read_or_drop(video_id, unreadable)) is not None:
                hidden_size = tensors["frame_features"].shape[-1]
                break
        if hidden_size is None:
            return 0, unreadable
        num_frames, num_patches, dtype = settings["num_frames"], settings["grid_size"] ** 2, settings["dtype"]
        features = Features(
            {
                "video_id": Value("string"),
                "frame_features": Array2D(shape=(num_frames, hidden_size), dtype=dtype),
                "patch_features": Array3D(shape=(num_frames, num_patches, hidden_size), dtype=dtype),
            }
        )
        output_dir = os.path.normpath(output_dir)
        staging = output_dir + ".assembling"
        cache = tempfile.mkdtemp(dir=self.work_dir, prefix="arrow-cache-")

        def rows() -> Iterator[dict]:
            for video_id in finished:
                if (tensors := self._read_or_drop(video_id, unreadable)) is not None:
                    yield {"video_id": video_id, **tensors}

        try:
            # A fresh cache folder: the generator's fingerprint cannot match an older, stale build.
            dataset = Dataset.from_generator(rows, features=features, cache_dir=cache)
            dataset.info.description = "MIST CLIP video features: " + json.dumps(settings, sort_keys=True)
            shutil.rmtree(staging, ignore_errors=True)
            dataset.save_to_disk(staging)
            num_rows = len(dataset)
            del dataset
            shutil.rmtree(output_dir, ignore_errors=True)
            os.replace(staging, output_dir)
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
