"""CLIP frame and patch features of a set of videos, as a `datasets` dataset (what `mist extract-features` runs).

Each process takes every n-th video of the sorted list, decodes in background threads and encodes
batches of videos on its device. Finished videos go to a work folder one file each (see
`processing.feature_store`), so an interrupted run resumes where it stopped. When all processes are
done, the main process writes the dataset (`video_id`, `frame_features [F, D]`,
`patch_features [F, P, D]`) with `save_to_disk`: load it with `datasets.load_from_disk` or push it
with `push_to_hub`. Unreadable videos are reported and skipped; the exit status is then 1.

An output folder that already holds a features dataset made with the same settings (CLIP model and
weights, frames, grid, crop size, dtype) is extended: its videos are kept and not computed again,
the new ones are added. One made with other settings is refused before any work starts.
"""

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from datasets import Dataset, load_from_disk
from tqdm.auto import tqdm

from modeling_mist.video_decoding_mist import VideoDecodeError
from modeling_mist.video_processing_mist import MistVideoProcessor
from processing.decode_pool import batched, decode_ahead
from processing.feature_store import SETTINGS_PREFIX, FeatureStore, restore_interrupted_swap
from processing.file_utils import NotEnoughSpaceError, megabytes
from processing.question_embeddings import add_question_embeddings
from processing.video_inputs import find_clips, find_video_inputs, find_videos, open_video  # noqa: F401  (API)


@dataclass
class ExtractionOptions:
    """One extraction run. Sizes and the CLIP choice are those of the model the features are for."""

    inputs: list[str]  # folders, globs, video files, list files, zip archives or Hub dataset ids (video_inputs)
    output_dir: str  # where the dataset is saved (load_from_disk)
    num_frames: int  # frames sampled per video (config.num_frames)
    grid_size: int  # crops per frame side (config.grid_size)
    crop_size: int  # CLIP input size (config.crop_size)
    clip_model: str  # open_clip model name or local-dir:PATH
    clip_pretrained: str | None  # open_clip tag or checkpoint file; None: seeded random weights
    work_dir: str | None = None  # per-video results for resuming (default: OUTPUT_DIR.work)
    batch_size: int = 4  # videos encoded together
    clip_batch_size: int = MistVideoProcessor.clip_batch_size  # images per CLIP forward pass
    decode_workers: int = 4  # threads decoding videos ahead
    dtype: str = "float16"  # stored feature type
    device: str | None = None  # device for CLIP (default: this process's accelerate device)
    clip_dtype: str | None = None  # CLIP weights cast to this type once; None: float32, fp16 autocast on GPU
    questions: str | None = None  # questions file to add CLIP text embeddings to
    questions_output: str | None = None  # where the questions file with embeddings goes
    question_column: str = "question"
    keep_work_dir: bool = False  # keep the per-video files after success
    no_progress: bool = False
    clips: str | None = None  # questions file of clips (STAR): one row per `feature_id`, from `start` to `end` s


@dataclass
class ExtractionSummary:
    """What a run did (main process only): rows written, videos asked for, computed now, failures."""

    rows: int  # rows of the written dataset, earlier videos included
    videos: int  # videos this run was given
    computed: int  # videos computed by this run
    failures: list[dict]
    questions_written: int | None = None
    main_process: bool = True
    kept_from_earlier: int = 0  # rows of the dataset already in the output folder that are not among `videos`
    skipped_members: int = 0  # archive members that are not videos


def _check_output_dir(output_dir: str) -> None:
    """Refuse to replace a folder that holds anything but a saved dataset."""
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not os.path.exists(os.path.join(output_dir, "state.json")):
            raise ValueError(f"--output-dir {output_dir} exists and is not a saved dataset; choose an empty folder")


def existing_dataset(output_dir: str, settings: dict) -> Dataset | None:
    """The features dataset already in `output_dir` when it was made with `settings` (None when there is
    none); raises ValueError naming the differing settings otherwise, RuntimeError when it is unreadable."""
    if not os.path.exists(os.path.join(output_dir, "state.json")):
        return None
    try:
        dataset = load_from_disk(output_dir)
    except Exception as error:  # noqa: BLE001  (pyarrow, json and datasets raise many kinds)
        raise RuntimeError(
            f"{output_dir}: the features dataset already there cannot be read ({type(error).__name__}: {error}); "
            "move it away or choose another --output-dir"
        ) from error
    description = dataset.info.description or ""
    if not description.startswith(SETTINGS_PREFIX):
        raise ValueError(
            f"--output-dir {output_dir} holds a dataset without recorded extraction settings, so its videos may "
            "come from another CLIP model; choose another --output-dir"
        )
    earlier = json.loads(description[len(SETTINGS_PREFIX) :])
    differing = sorted(key for key in set(earlier) | set(settings) if earlier.get(key) != settings.get(key))
    if differing:
        made = ", ".join(f"{key}={earlier.get(key)!r}" for key in differing)
        asked = ", ".join(f"{key}={settings.get(key)!r}" for key in differing)
        raise ValueError(
            f"--output-dir {output_dir} holds {len(dataset)} videos made with {made}, but this run asks for {asked}; "
            "rerun with the same settings to add videos to it, or choose another --output-dir"
        )
    return dataset


def extract_share(
    videos, store, video_processor, options: ExtractionOptions, state, device, done_before: frozenset = frozenset()
) -> dict:
    """Encode this process's share of `videos` that has no file yet and is not in `done_before` (the
    ids of the dataset already in the output folder); returns counts."""
    share = videos[state.process_index :: state.num_processes]
    pending = [video for video in share if not store.has(video.video_id) and video.video_id not in done_before]
    progress = tqdm(
        total=len(share),
        initial=len(share) - len(pending),
        desc=f"process {state.process_index}" if state.num_processes > 1 else "videos",
        unit="video",
        position=state.process_index,
        disable=options.no_progress,
    )
    computed = failed = 0
    decoded = decode_ahead(
        pending,
        partial(_load_video, video_processor),
        options.decode_workers,
        2 * options.batch_size,
    )
    for batch in batched(decoded, options.batch_size):
        good = []
        for video, frames, error in batch:
            if error is None:
                good.append((video, frames))
                continue
            failed += 1
            reason = (
                str(error) if isinstance(error, VideoDecodeError) else f"{video.name}: {type(error).__name__}: {error}"
            )
            progress.write(f"error: {reason}; skipped", file=sys.stderr)
            store.record_failure(state.process_index, video.name, reason)
        if good:
            frame_features, patch_features = video_processor.extract_features(
                [torch.from_numpy(frames) for _, frames in good], device=device, batch_size=options.clip_batch_size
            )
            for (video, _), frames_of_video, patches_of_video in zip(good, frame_features, patch_features):
                try:
                    store.write(video.video_id, frames_of_video, patches_of_video, options.dtype)
                except NotEnoughSpaceError as error:
                    per_video = (frames_of_video.numel() + patches_of_video.numel()) * np.dtype(options.dtype).itemsize
                    left = len(pending) - computed
                    raise NotEnoughSpaceError(
                        f"{store.work_dir}: the disk is full after {computed} of the {len(pending)} videos to compute; "
                        f"the {left} others need about {megabytes(left * per_video)} (and the dataset twice the whole "
                        f"when it is written); the finished videos are kept: free space and rerun to continue"
                    ) from error
                computed += 1
        progress.update(len(batch))
    progress.close()
    return {"share": len(share), "reused": len(share) - len(pending), "computed": computed, "failed": failed}


def _load_video(video_processor: MistVideoProcessor, video) -> np.ndarray:
    """Sampled frames of a video file, frame folder or archive member (of its clip, for a STAR question)."""
    with open_video(video) as source:
        return video_processor.load_video(source, start=video.start, end=video.end)


def _wait_for_processes(store: FeatureStore, num_processes: int) -> None:
    # Files rather than a collective barrier: shares can finish hours apart, beyond any barrier timeout.
    # A process that dies makes its launcher (accelerate launch, torchrun) stop the others, this one included.
    while len(store.summaries()) < num_processes:
        time.sleep(1)


def _process_state() -> PartialState:
    """This process's place among those launched together (accelerate launch, torchrun, or alone).

    `accelerate launch --cpu` marks CPU runs; processes that torchrun (or `accelerate launch
    --multi_gpu`) starts on a machine without GPUs are CPU processes too, joined over gloo.
    """
    launched_together = int(os.environ.get("WORLD_SIZE", "1")) > 1
    use_cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or (launched_together and not torch.cuda.is_available())
    return PartialState(cpu=use_cpu)


def extract_features(options: ExtractionOptions) -> ExtractionSummary:
    """Encode every video of `options.inputs` not encoded yet and write the dataset; see the module doc.

    Raises ValueError for unusable inputs or output folders before any work starts.
    """
    state = _process_state()
    output_dir = os.path.normpath(options.output_dir)
    work_dir = options.work_dir or output_dir + ".work"
    settings = {
        "clip_model_name": options.clip_model,
        "clip_pretrained": options.clip_pretrained,
        "num_frames": options.num_frames,
        "grid_size": options.grid_size,
        "crop_size": options.crop_size,
        "dtype": options.dtype,
    }
    found = find_video_inputs(options.inputs)
    videos = found.videos
    if options.clips:
        videos = find_clips(options.clips, videos)
    store = FeatureStore(work_dir)
    if not state.is_main_process:
        return _extract(options, settings, videos, store, state, found.skipped_members)
    store.lock(" ".join(sys.argv))
    try:
        return _extract(options, settings, videos, store, state, found.skipped_members)
    finally:
        store.unlock()
        if os.path.isdir(work_dir):
            store.remove_if_nothing_finished()


def _extract(
    options: ExtractionOptions, settings: dict, videos: list, store: FeatureStore, state, skipped_members
) -> ExtractionSummary:
    """`extract_features` once the work folder is this run's (the main process holds its lock);
    `skipped_members` counts the archives' non-video members, for the summary."""
    output_dir, work_dir = os.path.normpath(options.output_dir), store.work_dir
    if state.is_main_process:
        restore_interrupted_swap(output_dir)
    state.wait_for_everyone()
    _check_output_dir(output_dir)
    existing = existing_dataset(output_dir, settings)
    done_before = frozenset(map(str, existing["video_id"])) if existing is not None else frozenset()
    if state.is_main_process:
        store.prepare(settings)
    state.wait_for_everyone()  # the work folder is ready before anyone writes to it

    video_processor = MistVideoProcessor(
        clip_model_name=settings["clip_model_name"],
        clip_pretrained=settings["clip_pretrained"],
        num_frames=options.num_frames,
        grid_size=options.grid_size,
        crop_size={"height": options.crop_size, "width": options.crop_size},
        clip_batch_size=options.clip_batch_size,
        decode_workers=options.decode_workers,
        clip_dtype=options.clip_dtype,
    )
    device = torch.device(options.device) if options.device else state.device
    counts = extract_share(videos, store, video_processor, options, state, device, done_before)
    store.mark_done(state.process_index, counts)
    if not state.is_main_process:  # the main process reports everyone's failures
        return ExtractionSummary(
            rows=0, videos=len(videos), computed=counts["computed"], failures=[], main_process=False
        )

    _wait_for_processes(store, state.num_processes)
    failures = store.failures()
    video_ids = [video.video_id for video in videos]
    num_rows, unreadable = store.assemble(video_ids, output_dir, settings, existing)
    failures += unreadable
    summary = ExtractionSummary(
        rows=num_rows,
        videos=len(videos),
        computed=sum(done["computed"] for done in store.summaries()),
        failures=failures,
        kept_from_earlier=len(done_before - set(video_ids)) if num_rows else 0,
        skipped_members=skipped_members,
    )
    if options.questions:
        encode = partial(video_processor.encode_text, device=device)
        summary.questions_written = add_question_embeddings(
            options.questions, options.questions_output, encode, options.question_column
        )
    if not failures and not options.keep_work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    return summary
