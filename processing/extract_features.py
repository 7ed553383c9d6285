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

import glob
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from functools import partial

import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from datasets import Dataset, load_from_disk
from tqdm.auto import tqdm

from modeling_mist.video_decoding_mist import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoDecodeError
from modeling_mist.video_processing_mist import MistVideoProcessor
from processing.decode_pool import batched, decode_ahead
from processing.feature_store import SETTINGS_PREFIX, FeatureStore, restore_interrupted_swap
from processing.question_embeddings import add_question_embeddings, read_records


@dataclass
class ExtractionOptions:
    """One extraction run. Sizes and the CLIP choice are those of the model the features are for."""

    inputs: list[str]  # folders of videos, globs, video files or list files
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


@dataclass(frozen=True)
class VideoFile:
    video_id: str  # the dataset's key: file stem (or frame folder name), or a clip's `feature_id`
    path: str
    start: float | None = None  # a clip's first second (None: the video's start)
    end: float | None = None  # a clip's last second (None: the video's end)


def find_clips(clips_path: str, videos: list[VideoFile]) -> list[VideoFile]:
    """The clips a questions file asks about (STAR: each question its own clip of a video), keyed by
    `feature_id` (the question's row in the features dataset) and cut from `start` to `end` seconds of
    the video `video_id` among `videos`. Each distinct `feature_id` once, sorted."""
    path_of = {video.video_id: video.path for video in videos}
    clips, missing = {}, set()
    for index, record in enumerate(read_records(clips_path)):
        feature_id = record.get("feature_id", record.get("question_id"))
        if feature_id is None or record.get("video_id") is None:
            raise ValueError(f"{clips_path}: row {index} has no feature_id/question_id or no video_id")
        video_id = str(record["video_id"])
        if video_id not in path_of:
            missing.add(video_id)
            continue
        start, end = record.get("start"), record.get("end")
        clip = VideoFile(
            str(feature_id),
            path_of[video_id],
            None if start is None else float(start),
            None if end is None else float(end),
        )
        if clips.setdefault(clip.video_id, clip) != clip:
            raise ValueError(f"{clips_path}: feature_id {clip.video_id!r} names two different clips")
    if missing:
        print(
            f"warning: {len(missing)} videos of {clips_path} are not among the inputs; their clips are skipped "
            f"(e.g. {sorted(missing)[:3]})",
            file=sys.stderr,
        )
    if not clips:
        raise ValueError(f"{clips_path}: no clip's video is among the inputs")
    return sorted(clips.values(), key=lambda clip: clip.video_id)


def _is_frame_folder(path: str) -> bool:
    return os.path.isdir(path) and any(name.lower().endswith(IMAGE_EXTENSIONS) for name in os.listdir(path))


def _is_video(path: str) -> bool:
    return (os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)) or _is_frame_folder(path)


def _video_file(path: str) -> VideoFile:
    path = os.path.normpath(path)
    name = os.path.basename(path)
    return VideoFile(video_id=os.path.splitext(name)[0] if os.path.isfile(path) else name, path=path)


def find_videos(inputs: list[str]) -> list[VideoFile]:
    """Videos named by folders (their video files and frame folders), globs, video files or list files.

    A list file holds one path per line (relative to the list file's folder; `#` starts a comment).
    Entries of a list file are taken as given: a missing one is reported when it fails to decode.
    Sorted by id; raises ValueError for an input that names nothing or for two videos with one id.
    """
    found = []
    for entry in inputs:
        if os.path.isdir(entry) and not _is_frame_folder(entry):
            inside = [path for path in (os.path.join(entry, name) for name in os.listdir(entry)) if _is_video(path)]
            if not inside:
                raise ValueError(f"input {entry!r}: the folder holds no video file or frame folder")
            found += inside
        elif any(character in entry for character in "*?["):
            matches = sorted(path for path in glob.glob(entry, recursive=True) if _is_video(path))
            if not matches:
                raise ValueError(f"input {entry!r}: the glob matches no video file or frame folder")
            found += matches
        elif _is_video(entry):
            found.append(entry)
        elif os.path.isfile(entry):
            base = os.path.dirname(entry)
            with open(entry) as file:
                lines = [line.split("#", 1)[0].strip() for line in file]
            found += [os.path.join(base, line) for line in lines if line]
        else:
            raise ValueError(f"input {entry!r}: no such video file, folder, glob match or list file")
    videos = sorted({_video_file(path) for path in found}, key=lambda video: (video.video_id, video.path))
    by_id = {}
    for video in videos:
        by_id.setdefault(video.video_id, []).append(video.path)
    clashes = {video_id: paths for video_id, paths in by_id.items() if len(paths) > 1}
    if clashes:
        raise ValueError(f"several videos share an id (the file stem): {clashes}; ids must be unique")
    return videos


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
        lambda video: video_processor.load_video(video.path, start=video.start, end=video.end),
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
                str(error) if isinstance(error, VideoDecodeError) else f"{video.path}: {type(error).__name__}: {error}"
            )
            progress.write(f"error: {reason}; skipped", file=sys.stderr)
            store.record_failure(state.process_index, video.path, reason)
        if good:
            frame_features, patch_features = video_processor.extract_features(
                [torch.from_numpy(frames) for _, frames in good], device=device, batch_size=options.clip_batch_size
            )
            for (video, _), frames_of_video, patches_of_video in zip(good, frame_features, patch_features):
                store.write(video.video_id, frames_of_video, patches_of_video, options.dtype)
            computed += len(good)
        progress.update(len(batch))
    progress.close()
    return {"share": len(share), "reused": len(share) - len(pending), "computed": computed, "failed": failed}


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
    videos = find_videos(options.inputs)
    if options.clips:
        videos = find_clips(options.clips, videos)
    if state.is_main_process:
        restore_interrupted_swap(output_dir)
    state.wait_for_everyone()
    _check_output_dir(output_dir)
    existing = existing_dataset(output_dir, settings)
    done_before = frozenset(map(str, existing["video_id"])) if existing is not None else frozenset()
    store = FeatureStore(work_dir)
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
    )
    if options.questions:
        encode = partial(video_processor.encode_text, device=device)
        summary.questions_written = add_question_embeddings(
            options.questions, options.questions_output, encode, options.question_column
        )
    if not failures and not options.keep_work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    return summary
