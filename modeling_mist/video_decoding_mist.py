"""Video decoding for MIST: sample frame indices, then read only those frames of a file, folder or array."""

import io
import os
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from transformers.video_utils import VideoMetadata

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# A video given as a path, a folder of frame images, frames `[T, H, W, 3]` (or `[T, 3, H, W]`) uint8, or an
# open binary file (seekable, e.g. a member of a zip archive; its `name` is used in messages).
VideoSource = str | os.PathLike | np.ndarray | torch.Tensor | io.IOBase


class VideoDecodeError(ValueError):
    """A video that cannot be turned into frames; the message names the source and the reason."""


def sample_frame_indices(total_frames: int, num_frames: int) -> np.ndarray:
    """Indices `[num_frames]` of the middle frame of each of `num_frames` equal intervals of the video.

    The interval bounds are the reference's `np.linspace(0, total_frames, num_frames + 1)` truncated
    to integers. A video shorter than `num_frames` repeats frames (empty intervals take their start).
    """
    if total_frames < 1:
        raise ValueError(f"total_frames must be at least 1, got {total_frames}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    bounds = np.linspace(0, total_frames, num_frames + 1).astype(np.int64)
    starts, ends = bounds[:-1], bounds[1:]
    middles = np.maximum(starts, (starts + ends - 1) // 2)
    return np.minimum(middles, total_frames - 1)


def sample_clip_frame_indices(
    total_frames: int,
    num_frames: int,
    fps: float | None,
    start: float | None,
    end: float | None,
    source: str = "video",
) -> np.ndarray:
    """`sample_frame_indices` within the clip from `start` to `end` seconds (either may be None: the video's
    start or end). A clip before the first or after the last frame is cut to the video."""
    if start is None and end is None:
        return sample_frame_indices(total_frames, num_frames)
    if not fps:
        raise VideoDecodeError(f"{source}: a clip ({start}s to {end}s) needs the video's frame rate, which it lacks")
    first = min(max(int(round((start or 0.0) * fps)), 0), total_frames - 1)
    stop = total_frames if end is None else min(max(int(round(end * fps)), first + 1), total_frames)
    if end is not None and start is not None and end < start:
        raise VideoDecodeError(f"{source}: the clip ends ({end}s) before it starts ({start}s)")
    return first + sample_frame_indices(stop - first, num_frames)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_images(folder: str | os.PathLike) -> list[str]:
    """Image files of a frame folder in natural order (`frame_2` before `frame_10`)."""
    names = [name for name in os.listdir(folder) if name.lower().endswith(IMAGE_EXTENSIONS)]
    return [os.path.join(folder, name) for name in sorted(names, key=_natural_key)]


def _read_frame_folder(folder: str, sample_indices_fn: Callable | None) -> tuple[np.ndarray, VideoMetadata]:
    from PIL import Image

    paths = list_frame_images(folder)
    if not paths:
        raise VideoDecodeError(f"{folder}: folder holds no frame images ({', '.join(IMAGE_EXTENSIONS)})")
    metadata = VideoMetadata(total_num_frames=len(paths), video_backend="pil")
    indices = sample_indices_fn(metadata=metadata) if sample_indices_fn else np.arange(len(paths))
    images = {}
    for index in sorted(set(int(i) for i in indices)):
        try:
            with Image.open(paths[index]) as image:
                images[index] = np.asarray(image.convert("RGB"))
        except OSError as error:
            raise VideoDecodeError(f"{paths[index]}: unreadable frame image ({error})") from error
    shapes = {image.shape for image in images.values()}
    if len(shapes) > 1:
        raise VideoDecodeError(f"{folder}: frame images differ in size {sorted(shapes)}; expected one size")
    metadata.frames_indices = [int(i) for i in indices]
    return np.stack([images[int(i)] for i in indices]), metadata


# PyAV decodes: it is a pip wheel with FFmpeg inside (no system FFmpeg to match, unlike torchcodec),
# reads mp4/webm/avi/mkv alike, can demux packets without decoding (frame count and key frames of
# containers that store no frame count, e.g. webm) and seek to key frames, so only the GOPs that
# hold sampled frames are decoded. decord has no wheels for current Pythons and torchvision's
# video reader is gone.
def _read_video_file(
    source: str | io.IOBase, sample_indices_fn: Callable | None
) -> tuple[np.ndarray, VideoMetadata]:
    import av

    path = source if isinstance(source, str) else getattr(source, "name", "<video stream>")
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            index = _index_packets(container, stream)
            frame_timestamps, key_timestamps = index.timestamps, index.key_timestamps
            if not frame_timestamps:
                raise VideoDecodeError(f"{path}: video stream holds no frames")
            _check_not_truncated(path, container, stream, index)
            fps = float(stream.average_rate) if stream.average_rate else None
            metadata = VideoMetadata(
                total_num_frames=len(frame_timestamps),
                fps=fps,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                video_backend="pyav",
            )
            indices = sample_indices_fn(metadata=metadata) if sample_indices_fn else np.arange(len(frame_timestamps))
            indices = [int(i) for i in indices]
            if None in frame_timestamps:
                images = _decode_in_order(container, stream, sorted(set(indices)))
            else:
                images = _decode_by_seeking(container, stream, frame_timestamps, key_timestamps, sorted(set(indices)))
    except VideoDecodeError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoDecodeError(f"{path}: cannot decode ({error})") from error
    if not images:
        raise VideoDecodeError(f"{path}: no frame could be decoded")
    metadata.frames_indices = indices
    return np.stack([images[index] for index in indices]), metadata


@dataclass
class _PacketIndex:
    """What demuxing a file (reading it without decoding) tells about its video stream."""

    timestamps: list[int | None]  # presentation timestamp of every frame, in display order (None: none stored)
    key_timestamps: list[int]  # those of the key frames, sorted
    num_packets: int  # video packets, empty ones with a timestamp included (AVI can store a dropped frame so)
    content_end: float | None  # seconds: where the last packet of any stream ends (None: no timestamps)


def _index_packets(container, stream) -> _PacketIndex:
    """Demux every stream once: the video stream's frames and key frames, and where the content ends."""
    timestamps, key_timestamps, num_packets, content_end = [], [], 0, None
    for packet in container.demux():
        if packet.pts is not None and packet.time_base is not None:
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            content_end = end if content_end is None else max(content_end, end)
        if packet.stream.index != stream.index:
            continue
        if packet.size > 0 or packet.pts is not None:
            num_packets += 1
        if packet.size == 0:  # the flush packet at the end of the stream, or an empty (dropped) frame
            continue
        timestamps.append(packet.pts)
        if packet.is_keyframe and packet.pts is not None:
            key_timestamps.append(packet.pts)
    if None not in timestamps:
        timestamps.sort()
    return _PacketIndex(timestamps, sorted(key_timestamps), num_packets, content_end)


def _check_not_truncated(path: str, container, stream, index: _PacketIndex) -> None:
    """Raise `VideoDecodeError` when the file holds clearly less than its header declares.

    A file cut short (an interrupted download or copy) often still opens and demuxes (an MP4 whose index is
    at the front, a WebM or MKV): without this check it would pass as a shorter video, its frames sampled
    from the part that is there. Where the header counts the frames (MP4, MOV), more than 2 % of them (and
    more than one) missing is truncation; where it does not (WebM, MKV), the declared duration running more
    than 5 % (and more than a second) past the end of every stream's last packet is. The tolerances leave
    room for headers that round, and for streams that end a little apart.
    """
    remedy = (
        " (an interrupted download or copy?); fetch it again, or keep the part that is there by re-muxing it "
        "(ffmpeg -i IN -c copy OUT)"
    )
    declared = stream.frames  # 0 where the container stores no frame count
    if declared > 0:
        if declared - index.num_packets > max(1, 0.02 * declared):
            raise VideoDecodeError(
                f"{path}: truncated: its header declares {declared} frames but only {index.num_packets} are in "
                f"the file{remedy}"
            )
        return
    if container.duration is None or index.content_end is None:
        return
    duration = container.duration / 1e6  # microseconds
    covered = index.content_end - (container.start_time or 0) / 1e6
    if duration - covered > max(1.0, 0.05 * duration):
        raise VideoDecodeError(
            f"{path}: truncated: its header declares {duration:.1f} s but the file holds {covered:.1f} s{remedy}"
        )


def _decode_by_seeking(container, stream, frame_timestamps, key_timestamps, wanted) -> dict[int, np.ndarray]:
    """Decode the frames at the `wanted` indices (sorted), seeking to a key frame whenever one lies ahead."""
    images, last_image = {}, None
    frames, position = None, None
    for index in wanted:
        target = frame_timestamps[index]
        key_position = bisect_right(key_timestamps, target) - 1
        key = key_timestamps[key_position] if key_position >= 0 else frame_timestamps[0]
        if frames is None or (position is not None and key > position):
            container.seek(key, stream=stream, backward=True, any_frame=False)
            frames = container.decode(stream)
        for frame in frames:
            if frame.pts is None:
                continue
            position = frame.pts
            if frame.pts >= target:  # first frame at or after the target: the target itself when it decodes
                images[index] = last_image = frame.to_ndarray(format="rgb24")
                break
        else:
            break  # end of stream: the remaining indices repeat the last decoded frame
    for index in wanted:
        if index not in images and last_image is not None:
            images[index] = last_image
    return images


def _decode_in_order(container, stream, wanted) -> dict[int, np.ndarray]:
    """Decode from the start and keep the `wanted` frames by decode count (containers without timestamps)."""
    container.seek(0)
    images, last_image, wanted_set = {}, None, set(wanted)
    for count, frame in enumerate(container.decode(stream)):
        if count in wanted_set:
            images[count] = last_image = frame.to_ndarray(format="rgb24")
        if count >= wanted[-1]:
            break
    for index in wanted:
        if index not in images and last_image is not None:
            images[index] = last_image
    return images


def _frames_from_array(video: np.ndarray | torch.Tensor, sample_indices_fn: Callable | None):
    frames = video.numpy(force=True) if isinstance(video, torch.Tensor) else np.asarray(video)
    if frames.ndim != 4 or 3 not in (frames.shape[1], frames.shape[-1]):
        raise VideoDecodeError(f"video array has shape {tuple(frames.shape)}; expected [T, H, W, 3] or [T, 3, H, W]")
    if frames.dtype != np.uint8:
        raise VideoDecodeError(f"video array has dtype {frames.dtype}; expected uint8 frames")
    if frames.shape[-1] != 3:
        frames = frames.transpose(0, 2, 3, 1)  # [T, H, W, 3]
    if frames.shape[0] == 0:
        raise VideoDecodeError("video array holds no frames")
    metadata = VideoMetadata(total_num_frames=frames.shape[0], height=frames.shape[1], width=frames.shape[2])
    indices = sample_indices_fn(metadata=metadata) if sample_indices_fn else np.arange(frames.shape[0])
    metadata.frames_indices = [int(i) for i in indices]
    return frames[np.asarray(indices)], metadata


def load_video_frames(
    video: VideoSource, sample_indices_fn: Callable | None = None
) -> tuple[np.ndarray, VideoMetadata]:
    """Frames `[F, H, W, 3]` uint8 of a video file (a path or an open binary file), a frame folder or a frame
    array, and their metadata.

    `sample_indices_fn(metadata=...)` picks the frame indices from the total frame count; only those
    frames are decoded. Without it, every frame is returned. Raises `VideoDecodeError` naming the
    source when it cannot be read.
    """
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return _frames_from_array(video, sample_indices_fn)
    if isinstance(video, io.IOBase):
        return _read_video_file(video, sample_indices_fn)
    path = os.fspath(video)
    if os.path.isdir(path):
        return _read_frame_folder(path, sample_indices_fn)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: no such file or folder")
    if path.lower().endswith(IMAGE_EXTENSIONS):  # ffmpeg would read it as a one-frame video
        raise VideoDecodeError(
            f"{path}: an image, not a video; expected a video file ({', '.join(VIDEO_EXTENSIONS)}) or a folder of "
            "frame images"
        )
    return _read_video_file(path, sample_indices_fn)


def as_video_list(videos) -> list[VideoSource]:
    """One video or a batch of videos as a list of single videos."""
    if isinstance(videos, (str, os.PathLike)):
        return [videos]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        return list(videos) if videos.ndim == 5 else [videos]
    if isinstance(videos, (list, tuple)) and videos:
        return list(videos)
    raise ValueError(
        f"videos must be a path, a frame folder, frames [T, H, W, 3] uint8, or a list of those; got {type(videos)}"
    )


def load_videos(
    videos: Sequence[VideoSource], sample_indices_fn: Callable | None = None, workers: int = 1
) -> tuple[list[np.ndarray], list[VideoMetadata]]:
    """`load_video_frames` of each video, decoded by up to `workers` threads; frames and metadata in order."""
    decode = partial(load_video_frames, sample_indices_fn=sample_indices_fn)
    workers = min(max(workers, 1), len(videos))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # PyAV releases the GIL while decoding
            results = list(pool.map(decode, videos))
    else:
        results = [decode(video) for video in videos]
    return [frames for frames, _ in results], [metadata for _, metadata in results]


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoDecodeError",
    "VideoSource",
    "as_video_list",
    "list_frame_images",
    "load_video_frames",
    "load_videos",
    "sample_clip_frame_indices",
    "sample_frame_indices",
]
