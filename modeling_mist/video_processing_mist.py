"""MIST video processor: sample frames, then embed each frame and its grid of crops with a frozen CLIP.

One video becomes `frame_features [F, D]` (CLIP's own preprocessing of each sampled frame) and
`patch_features [F, P, D]` (the frame resized to a `grid_size * crop_size` square, cut into a
`grid_size x grid_size` grid of crops, row-major, each crop encoded as an image). The CLIP model is
open_clip's, built lazily on first use; only its name and pretrained tag (or file) are saved.
"""

import contextlib
import os
import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import torch
import torchvision.transforms.v2.functional as tvF
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PILImageResampling,
    SizeDict,
    pil_torch_interpolation_mapping,
)
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# A video given as a path, a folder of frame images, or frames `[T, H, W, 3]` (or `[T, 3, H, W]`) uint8.
VideoSource = str | os.PathLike | np.ndarray | torch.Tensor


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
def _read_video_file(path: str, sample_indices_fn: Callable | None) -> tuple[np.ndarray, VideoMetadata]:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frame_timestamps, key_timestamps = _index_packets(container, stream)
            if not frame_timestamps:
                raise VideoDecodeError(f"{path}: video stream holds no frames")
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


def _index_packets(container, stream) -> tuple[list[int | None], list[int]]:
    """Presentation timestamps of every frame, in display order, and those of the key frames.

    Demuxing reads the file but decodes nothing. A timestamp is None where the container has none.
    """
    timestamps, key_timestamps = [], []
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packet at the end of the stream
            continue
        timestamps.append(packet.pts)
        if packet.is_keyframe and packet.pts is not None:
            key_timestamps.append(packet.pts)
    if None not in timestamps:
        timestamps.sort()
    return timestamps, sorted(key_timestamps)


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
    """Frames `[F, H, W, 3]` uint8 of a video file, a frame folder or a frame array, and their metadata.

    `sample_indices_fn(metadata=...)` picks the frame indices from the total frame count; only those
    frames are decoded. Without it, every frame is returned. Raises `VideoDecodeError` naming the
    source when it cannot be read.
    """
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return _frames_from_array(video, sample_indices_fn)
    path = os.fspath(video)
    if os.path.isdir(path):
        return _read_frame_folder(path, sample_indices_fn)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: no such file or folder")
    return _read_video_file(path, sample_indices_fn)


class _ClipRuntime:
    """The built CLIP model and tokenizer of one processor: never serialised, and a deep copy starts empty."""

    def __init__(self):
        self.model = None
        self.tokenizer = None
        self.lock = threading.Lock()

    def __deepcopy__(self, memo):
        return _ClipRuntime()


def build_clip_model(model_name: str, pretrained: str | None) -> torch.nn.Module:
    """An open_clip model on CPU in eval mode, frozen.

    `pretrained` is an open_clip tag (`"openai"`), a checkpoint file, or None for random weights drawn
    from a fixed seed, so that every process builds the same model. A `local-dir:` or `hf-hub:` model
    name carries its own weights (none in the folder also means seeded random weights).
    """
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(model_name, pretrained=pretrained, device="cpu")
    return model.eval().requires_grad_(False)


class MistVideoProcessorKwargs(VideosKwargs, total=False):
    """Video kwargs plus the MIST crop grid and the batching of the CLIP forwards.

    grid_size (`int`): patches per frame are a `grid_size x grid_size` grid of `crop_size` crops.
    clip_batch_size (`int`): images per CLIP forward pass.
    decode_workers (`int`): threads decoding the videos of one call in parallel.
    """

    grid_size: int
    clip_batch_size: int
    decode_workers: int


class MistVideoProcessor(BaseVideoProcessor):
    r"""
    Samples `num_frames` frames per video and embeds each frame and its `grid_size x grid_size` crops
    with a frozen open_clip model.

    Args:
        clip_model_name (`str`, defaults to `"ViT-B-32-quickgelu"`):
            open_clip model name (or `local-dir:PATH` / `hf-hub:REPO`).
        clip_pretrained (`str`, *optional*, defaults to `"openai"`):
            open_clip pretrained tag or checkpoint file; None (or `"none"`) for seeded random weights.
        num_frames (`int`, defaults to 32): frames sampled per video.
        grid_size (`int`, defaults to 4): crops per frame side.
        crop_size (`dict`, defaults to `{"height": 224, "width": 224}`): CLIP input size, one crop's size.
        clip_batch_size (`int`, defaults to 544): images per CLIP forward pass.
        decode_workers (`int`, defaults to 4): threads decoding the videos of one call.
    """

    valid_kwargs = MistVideoProcessorKwargs
    model_input_names = ["frame_features", "patch_features"]

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"shortest_edge": 224}
    crop_size = {"height": 224, "width": 224}
    default_to_square = False
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = False  # decoded frames are RGB already
    do_sample_frames = True
    num_frames = 32
    grid_size = 4
    clip_batch_size = 544  # one ViT-B/32 video (32 frames + 512 crops) per forward
    decode_workers = 4
    clip_model_name = "ViT-B-32-quickgelu"
    clip_pretrained = "openai"  # a class default, so that to_dict keeps an explicit None (random weights)

    def __init__(
        self,
        clip_model_name: str = clip_model_name,
        clip_pretrained: str | None = clip_pretrained,
        **kwargs: Unpack[MistVideoProcessorKwargs],
    ):
        if "crop_size" in kwargs and "size" not in kwargs:
            # The frame's short side goes to the crop size, as CLIP's own preprocessing does.
            crop_size = kwargs["crop_size"]
            kwargs["size"] = {"shortest_edge": crop_size if isinstance(crop_size, int) else crop_size["height"]}
        super().__init__(**kwargs)
        self.clip_model_name = clip_model_name
        self.clip_pretrained = None if clip_pretrained in (None, "", "none", "None") else os.fspath(clip_pretrained)
        self._clip = _ClipRuntime()

    def to_dict(self):
        output = super().to_dict()
        output.pop("_clip", None)
        output.pop("device", None)  # where CLIP runs is this machine's choice, not part of the saved processor
        return output

    # ----- CLIP -----

    @property
    def clip_device(self) -> torch.device:
        """Where CLIP runs unless a call names a device: `self.device` if set (see `to`), else CPU."""
        return torch.device(self.device) if self.device is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> "MistVideoProcessor":
        """Run CLIP on `device` from now on (moves the model if it is built)."""
        self.device = torch.device(device)
        if self._clip.model is not None:
            self._clip.model.to(self.device)
        return self

    def clip_model(self, device: str | torch.device | None = None) -> torch.nn.Module:
        """The CLIP model, built on first use and moved to `device` (default `clip_device`)."""
        device = torch.device(device) if device is not None else self.clip_device
        with self._clip.lock:
            if self._clip.model is None:
                self._clip.model = build_clip_model(self.clip_model_name, self.clip_pretrained)
                image_size = tuple(self._clip.model.visual.image_size)
                if image_size != (self.crop_size.height, self.crop_size.width):
                    raise ValueError(
                        f"CLIP model {self.clip_model_name!r} takes {image_size} images but crop_size is "
                        f"{(self.crop_size.height, self.crop_size.width)}; set crop_size to the CLIP image size"
                    )
            model = self._clip.model
            if next(model.parameters()).device != device:
                model.to(device)
        return model

    def clip_tokenizer(self) -> Callable:
        import open_clip

        with self._clip.lock:
            if self._clip.tokenizer is None:
                self._clip.tokenizer = open_clip.get_tokenizer(self.clip_model_name)
        return self._clip.tokenizer

    @staticmethod
    def _autocast(device: torch.device):
        # Half precision on GPU: CLIP was trained in fp16 and the features are stored in fp16 anyway.
        if device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def encode_images(self, pixel_values: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """CLIP image embeddings `[N, D]` float32 of normalised images `[N, 3, S, S]`, on their device."""
        device = pixel_values.device
        model = self.clip_model(device)
        batch_size = batch_size or self.clip_batch_size
        num_images = pixel_values.shape[0]
        num_chunks = max(1, -(-num_images // batch_size))
        chunk_size = -(-num_images // num_chunks)  # equal chunks rather than a full batch plus a tiny tail
        with torch.inference_mode(), self._autocast(device):
            embeddings = [model.encode_image(chunk) for chunk in pixel_values.split(chunk_size)]
        return torch.cat(embeddings).float()

    def encode_text(self, texts: Sequence[str], device: str | torch.device | None = None) -> torch.Tensor:
        """Raw CLIP text embeddings `[B, D]` float32 (projected end-of-text token, not normalised), on CPU."""
        device = torch.device(device) if device is not None else self.clip_device
        model = self.clip_model(device)
        tokens = self.clip_tokenizer()(list(texts)).to(device)
        with torch.inference_mode(), self._autocast(device):
            embeddings = model.encode_text(tokens)
        return embeddings.float().cpu()

    # ----- frames -----

    def sample_frames(self, metadata: VideoMetadata, num_frames: int | None = None, **kwargs) -> np.ndarray:
        """Middle frame of each of `num_frames` equal intervals (see `sample_frame_indices`)."""
        return sample_frame_indices(metadata.total_num_frames, num_frames or self.num_frames)

    def load_video(self, video: VideoSource, num_frames: int | None = None) -> np.ndarray:
        """Sampled frames `[num_frames, H, W, 3]` uint8 of a video path, frame folder or frame array."""
        num_frames = num_frames or self.num_frames
        frames, _ = load_video_frames(video, partial(self.sample_frames, num_frames=num_frames))
        return frames

    def clip_pixel_values(
        self,
        frames: torch.Tensor,
        size: SizeDict | None = None,
        crop_size: SizeDict | None = None,
        grid_size: int | None = None,
        resample: PILImageResampling | int | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP inputs of frames `[F, 3, H, W]` uint8, computed on the frames' device.

        Returns the frame images `[F, 3, S, S]` (short side resized to `size`, bicubic antialiased,
        centre crop) and the crops `[F, P, 3, S, S]` (frame resized to `grid_size * S` squared, no aspect
        preservation, cut row-major), both normalised float32. Resizing stays in uint8 like the reference.
        """
        size = size or self.size
        crop_size = crop_size or self.crop_size
        grid_size = grid_size or self.grid_size
        interpolation = pil_torch_interpolation_mapping[resample if resample is not None else self.resample]
        num_frames = frames.shape[0]
        crop_height, crop_width = crop_size.height, crop_size.width

        frame_images = tvF.resize(frames, [size.shortest_edge], interpolation=interpolation, antialias=True)
        frame_images = tvF.center_crop(frame_images, [crop_height, crop_width])  # [F, 3, S, S]

        canvas_size = [grid_size * crop_height, grid_size * crop_width]
        canvas = tvF.resize(frames, canvas_size, interpolation=interpolation, antialias=True)  # [F, 3, G*S, G*S]
        crops = canvas.reshape(num_frames, 3, grid_size, crop_height, grid_size, crop_width)
        crops = crops.permute(0, 2, 4, 1, 3, 5)  # [F, grid rows, grid columns, 3, S, S]
        crops = crops.reshape(num_frames, grid_size * grid_size, 3, crop_height, crop_width)  # [F, P, 3, S, S]

        mean = torch.tensor(image_mean or self.image_mean, device=frames.device).view(3, 1, 1)
        std = torch.tensor(image_std or self.image_std, device=frames.device).view(3, 1, 1)
        return (frame_images / 255.0 - mean) / std, (crops / 255.0 - mean) / std

    def extract_features(
        self,
        videos: Sequence[torch.Tensor | np.ndarray],
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        **pixel_kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP features of sampled frames, all frames and crops of all videos batched together.

        `videos` are `[F, 3, H, W]` (or `[F, H, W, 3]`) uint8, the same F for all. Returns
        `frame_features [B, F, D]` and `patch_features [B, F, P, D]`, float32 on CPU.
        """
        device = torch.device(device) if device is not None else self.clip_device
        pixel_dtype = torch.float16 if device.type == "cuda" else torch.float32
        pixel_values = []
        for frames in videos:
            frames = torch.as_tensor(frames)
            if frames.shape[-1] == 3 and frames.shape[1] != 3:
                frames = frames.permute(0, 3, 1, 2)  # [F, 3, H, W]
            frame_images, crops = self.clip_pixel_values(frames.to(device, non_blocking=True), **pixel_kwargs)
            # [F * (1 + P), 3, S, S]: the frames first, then their crops frame by frame
            pixel_values.append(torch.cat([frame_images, crops.flatten(0, 1)]).to(pixel_dtype))
        num_videos, (num_frames, num_patches) = len(videos), crops.shape[:2]
        if len({pixels.shape[0] for pixels in pixel_values}) > 1:
            raise ValueError(f"videos have different frame counts {[len(v) for v in videos]}; expected one count")
        embeddings = self.encode_images(torch.cat(pixel_values), batch_size=batch_size).cpu()
        embeddings = embeddings.view(num_videos, num_frames * (1 + num_patches), -1)  # [B, F * (1 + P), D]
        frame_features = embeddings[:, :num_frames]  # [B, F, D]
        patch_features = embeddings[:, num_frames:].reshape(num_videos, num_frames, num_patches, -1)  # [B, F, P, D]
        return frame_features, patch_features

    # ----- BaseVideoProcessor hooks -----

    def _decode_and_sample_videos(
        self,
        videos,
        video_metadata=None,
        do_sample_frames: bool | None = None,
        sample_indices_fn: Callable | None = None,
    ) -> tuple[list[np.ndarray], list[VideoMetadata]]:
        sources = _as_video_list(videos)
        decode = partial(load_video_frames, sample_indices_fn=sample_indices_fn if do_sample_frames else None)
        workers = min(self.decode_workers or 1, len(sources))
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:  # PyAV releases the GIL while decoding
                results = list(pool.map(decode, sources))
        else:
            results = [decode(source) for source in sources]
        return [frames for frames, _ in results], [metadata for _, metadata in results]

    def _preprocess(self, videos: list[torch.Tensor], return_tensors=None, **kwargs) -> BatchFeature:
        frame_features, patch_features = self.extract_features(
            videos,
            device=videos[0].device,
            batch_size=kwargs.get("clip_batch_size"),
            size=kwargs.get("size"),
            crop_size=kwargs.get("crop_size"),
            grid_size=kwargs.get("grid_size"),
            resample=kwargs.get("resample"),
            image_mean=kwargs.get("image_mean"),
            image_std=kwargs.get("image_std"),
        )
        data = {"frame_features": frame_features, "patch_features": patch_features}
        return BatchFeature(data=data, tensor_type=return_tensors)


def _as_video_list(videos) -> list[VideoSource]:
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


__all__ = ["MistVideoProcessor", "VideoDecodeError", "load_video_frames", "sample_frame_indices"]
