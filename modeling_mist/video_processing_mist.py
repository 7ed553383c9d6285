"""MIST video processor: sample frames, then embed each frame and its grid of crops with a frozen CLIP.

One video becomes `frame_features [F, D]` (CLIP's own preprocessing of each sampled frame) and
`patch_features [F, P, D]` (the frame resized to a `grid_size * crop_size` square, cut into a
`grid_size x grid_size` grid of crops, row-major, each crop encoded as an image). Decoding lives in
`video_decoding_mist.py`, the CLIP model in `clip_runtime_mist.py`; only the CLIP name and pretrained
tag (or file) are saved.
"""

from collections.abc import Callable, Sequence
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

from .clip_runtime_mist import (
    ClipRuntime,
    clip_embedding_size,
    clip_weights_dtype_on,
    embed_images,
    embed_texts,
    parse_clip_dtype,
    parse_clip_pretrained,
)
from .configuration_mist import MistConfig
from .video_decoding_mist import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoDecodeError,
    VideoSource,
    as_video_list,
    load_video_frames,
    load_videos,
    sample_clip_frame_indices,
    sample_frame_indices,
)


def shortest_edge_size(image_size: Sequence[int], shortest_edge: int) -> tuple[int, int]:
    """`(height, width)` with the short side `shortest_edge` and the long side scaled and truncated, as torchvision's
    `Resize(int)` computes it."""
    height, width = image_size
    short, long = sorted((height, width))
    new_long = int(shortest_edge * long / short)
    return (shortest_edge, new_long) if height <= width else (new_long, shortest_edge)


def resize_like_reference(
    frames: torch.Tensor, size: Sequence[int], interpolation: tvF.InterpolationMode = tvF.InterpolationMode.BICUBIC
) -> torch.Tensor:
    """Frames `[F, 3, H, W]` uint8 resized to `size` `(h, w)` (antialiased), as float32 whole pixel values `[F, 3, h, w]`.

    What the reference's torchvision v1 `Resize` does to a uint8 tensor: interpolate in float32, clamp to [0, 255]
    and round once. (torchvision v2 on uint8 runs a native uint8 kernel that rounds and clamps between its
    horizontal and vertical passes: up to 17 levels off at sharp edges, where the clamp cuts bicubic overshoot.)
    """
    smooth = interpolation.value in ("bilinear", "bicubic")  # the modes with antialiasing and corner alignment
    resized = torch.nn.functional.interpolate(
        frames.float(),
        size=tuple(size),
        mode=interpolation.value,
        align_corners=False if smooth else None,
        antialias=smooth,
    )
    return resized.clamp_(0, 255).round_()


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
        num_frames (`int`, defaults to `MistConfig.num_frames`, 32): frames sampled per video.
        grid_size (`int`, defaults to `MistConfig.grid_size`, 4): crops per frame side.
        crop_size (`dict`, defaults to height and width `MistConfig.crop_size`, 224): CLIP input size, one crop's
            size.
        clip_batch_size (`int`, defaults to 544): images per CLIP forward pass.
        decode_workers (`int`, defaults to 4): threads decoding the videos of one call.
        clip_dtype (`str`, *optional*): the precision CLIP runs in. None (or `"auto"`): bfloat16 weights on a CPU
            with native bf16 (AVX512-BF16 or AMX: about twice float32's speed, features within cosine 0.9999),
            else float32 weights, under float16 autocast on a GPU. `"float32"`, `"float16"` or `"bfloat16"`: the
            weights cast to that type once and run in it, without autocast (`"float16"` is meant for GPUs).
    """

    valid_kwargs = MistVideoProcessorKwargs
    model_input_names = ["frame_features", "patch_features"]

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    # The frame, grid and crop sizes are the model's (`MistProcessor.from_mist_config` passes its config's);
    # these defaults, for a processor built on its own, are `MistConfig`'s (the paper's), not restated here.
    size = {"shortest_edge": MistConfig.crop_size}
    crop_size = {"height": MistConfig.crop_size, "width": MistConfig.crop_size}
    default_to_square = False
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = False  # decoded frames are RGB already
    do_sample_frames = True
    num_frames = MistConfig.num_frames
    grid_size = MistConfig.grid_size
    clip_batch_size = 544  # one ViT-B/32 video (32 frames + 512 crops) per forward
    decode_workers = 4
    clip_model_name = "ViT-B-32-quickgelu"
    clip_pretrained = "openai"  # a class default, so that to_dict keeps an explicit None (random weights)
    clip_dtype = None

    def __init__(
        self,
        clip_model_name: str = clip_model_name,
        clip_pretrained: str | None = clip_pretrained,
        clip_dtype: str | None = clip_dtype,
        **kwargs: Unpack[MistVideoProcessorKwargs],
    ):
        if "crop_size" in kwargs and "size" not in kwargs:
            # The frame's short side goes to the crop size, as CLIP's own preprocessing does.
            crop_size = kwargs["crop_size"]
            kwargs["size"] = {"shortest_edge": crop_size if isinstance(crop_size, int) else crop_size["height"]}
        super().__init__(**kwargs)
        self.clip_model_name = clip_model_name
        self.clip_pretrained = parse_clip_pretrained(clip_pretrained)
        self.clip_dtype = parse_clip_dtype(clip_dtype)
        self._clip = ClipRuntime()

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
        self._clip.to(self.device)
        return self

    def clip_weights_dtype(self, device: torch.device) -> str | None:
        """The type CLIP's weights are cast to on `device` (`clip_dtype` parsed, also when the attribute was set
        after construction; see `clip_weights_dtype_on` for the auto precision), or None: float32 weights, under
        fp16 autocast on a GPU."""
        return clip_weights_dtype_on(parse_clip_dtype(self.clip_dtype), torch.device(device))

    def clip_model(self, device: str | torch.device | None = None) -> torch.nn.Module:
        """The CLIP model, built on first use and moved to `device` (default `clip_device`)."""
        device = torch.device(device) if device is not None else self.clip_device
        crop_size = (self.crop_size.height, self.crop_size.width)
        return self._clip.get_model(
            self.clip_model_name, self.clip_pretrained, device, crop_size, self.clip_weights_dtype(device)
        )

    def check_clip_width(self, clip_hidden_size: int) -> None:
        """Refuse, before any frame is decoded, to embed videos for a model that reads features of another width
        (one trained on synthetic or other features, such as the demo's): its CLIP's output could not be read."""
        made = clip_embedding_size(self.clip_model_name)
        if made is None:  # only building CLIP would tell (an `hf-hub:` model): build it
            made = self.clip_model().visual.output_dim
        if made != clip_hidden_size:
            raise ValueError(
                f"the model reads {clip_hidden_size}-d video features but its processor's CLIP "
                f"({self.clip_model_name}) gives {made}-d ones, so it cannot answer about a video file, only from "
                f"stored features of its own width (frame_features, patch_features)"
            )

    def clip_tokenizer(self) -> Callable:
        """The open_clip tokenizer of `clip_model_name`, built on first use."""
        return self._clip.get_tokenizer(self.clip_model_name)

    def encode_images(self, pixel_values: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """CLIP image embeddings `[N, D]` float32 of normalised images `[N, 3, S, S]`, on their device."""
        model = self.clip_model(pixel_values.device)
        autocast = self.clip_weights_dtype(pixel_values.device) is None
        return embed_images(model, pixel_values, batch_size or self.clip_batch_size, autocast=autocast)

    def encode_text(self, texts: Sequence[str], device: str | torch.device | None = None) -> torch.Tensor:
        """Raw CLIP text embeddings `[B, D]` float32 (projected end-of-text token, not normalised), on CPU."""
        device = torch.device(device) if device is not None else self.clip_device
        autocast = self.clip_weights_dtype(device) is None
        return embed_texts(self.clip_model(device), self.clip_tokenizer(), texts, device, autocast=autocast)

    # ----- frames -----

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        start: float | None = None,
        end: float | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Middle frame of each of `num_frames` equal intervals (see `sample_frame_indices`), of the whole
        video or of the clip from `start` to `end` seconds."""
        num_frames = num_frames or self.num_frames
        return sample_clip_frame_indices(metadata.total_num_frames, num_frames, metadata.fps, start, end)

    def load_video(
        self, video: VideoSource, num_frames: int | None = None, start: float | None = None, end: float | None = None
    ) -> np.ndarray:
        """Sampled frames `[num_frames, H, W, 3]` uint8 of a video path, frame folder or frame array, or of
        its clip from `start` to `end` seconds (STAR's questions each ask about one clip)."""
        num_frames = num_frames or self.num_frames
        frames, _ = load_video_frames(video, partial(self.sample_frames, num_frames=num_frames, start=start, end=end))
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

        Returns the frame images `[F, 3, S, S]` (short side resized to `size`, centre crop) and the crops
        `[F, P, 3, S, S]` (frame resized to `grid_size * S` squared, no aspect preservation, cut row-major),
        both normalised float32. Both resizes are `resize_like_reference` (bicubic, antialiased, interpolated in
        float and rounded to whole pixel values once, as the reference's torchvision v1 `Resize` does).
        """
        size = size or self.size
        crop_size = crop_size or self.crop_size
        grid_size = grid_size or self.grid_size
        interpolation = pil_torch_interpolation_mapping[resample if resample is not None else self.resample]
        num_frames = frames.shape[0]
        crop_height, crop_width = crop_size.height, crop_size.width

        frame_size = shortest_edge_size(frames.shape[-2:], size.shortest_edge)
        frame_images = resize_like_reference(frames, frame_size, interpolation)
        frame_images = tvF.center_crop(frame_images, [crop_height, crop_width])  # [F, 3, S, S]

        canvas_size = (grid_size * crop_height, grid_size * crop_width)
        canvas = resize_like_reference(frames, canvas_size, interpolation)  # [F, 3, G*S, G*S]
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
        if self.clip_weights_dtype(device) is not None:
            pixel_dtype = getattr(torch, self.clip_weights_dtype(device))
        else:
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
        sample_indices_fn = sample_indices_fn if do_sample_frames else None
        return load_videos(as_video_list(videos), sample_indices_fn, workers=self.decode_workers or 1)

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


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MistVideoProcessor",
    "MistVideoProcessorKwargs",
    "VideoDecodeError",
    "load_video_frames",
    "resize_like_reference",
    "sample_frame_indices",
]
