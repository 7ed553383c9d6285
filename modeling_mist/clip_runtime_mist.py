"""The frozen open_clip model of the MIST video processor: built lazily, moved between devices, run under autocast."""

import contextlib
import json
import os
import threading
from collections.abc import Callable, Sequence

import torch


def parse_clip_pretrained(value: str | os.PathLike | None) -> str | None:
    """The open_clip pretrained tag or checkpoint file of `value`; None (random weights) for None, `""` or `"none"`."""
    if value is None:
        return None
    value = os.fspath(value)
    return None if value.lower() in ("", "none") else value


CLIP_DTYPES = ("float32", "float16", "bfloat16")


def parse_clip_dtype(value: str | torch.dtype | None) -> str | None:
    """The precision CLIP runs in: None for `"auto"` (float16 autocast on GPU, float32 elsewhere), or the name of
    the type its weights are cast to once (`"float32"`, `"float16"`, `"bfloat16"`)."""
    if isinstance(value, torch.dtype):
        value = str(value).removeprefix("torch.")
    if value is None or value == "auto":
        return None
    if value not in CLIP_DTYPES:
        raise ValueError(f"clip_dtype {value!r}: expected 'auto' or one of {', '.join(map(repr, CLIP_DTYPES))}")
    return value


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


def clip_embedding_size(model_name: str) -> int | None:
    """The width of the embeddings open_clip model `model_name` makes, read from its config without building it
    (a `local-dir:` folder's `open_clip_config.json` included); None when only building it would tell (`hf-hub:`)."""
    import open_clip

    if model_name.startswith("local-dir:"):
        config_path = os.path.join(model_name.removeprefix("local-dir:"), "open_clip_config.json")
        try:
            with open(config_path) as file:
                return int(json.load(file)["model_cfg"]["embed_dim"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    config = open_clip.get_model_config(model_name)
    return int(config["embed_dim"]) if config and "embed_dim" in config else None


def weight_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def clip_autocast(device: torch.device, enabled: bool = True):
    """fp16 autocast on GPU (CLIP was trained in fp16 and the features are stored in fp16), nothing elsewhere
    or when not `enabled` (a `clip_dtype` was chosen: the model runs in its weights' type)."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def embed_images(
    model: torch.nn.Module, pixel_values: torch.Tensor, batch_size: int, autocast: bool = True
) -> torch.Tensor:
    """CLIP image embeddings `[N, D]` float32 of normalised images `[N, 3, S, S]`, `batch_size` images a forward;
    `autocast`: fp16 autocast on GPU (see `clip_autocast`), else the images are cast to the weights' type."""
    num_images = pixel_values.shape[0]
    num_chunks = max(1, -(-num_images // batch_size))
    chunk_size = -(-num_images // num_chunks)  # equal chunks rather than a full batch plus a tiny tail
    dtype = weight_dtype(model)
    with torch.inference_mode(), clip_autocast(pixel_values.device, autocast):
        chunks = pixel_values.split(chunk_size)
        if not autocast:
            chunks = (chunk.to(dtype) for chunk in chunks)
        embeddings = [model.encode_image(chunk) for chunk in chunks]
    return torch.cat(embeddings).float()


def embed_texts(
    model: torch.nn.Module, tokenizer: Callable, texts: Sequence[str], device: torch.device, autocast: bool = True
) -> torch.Tensor:
    """Raw CLIP text embeddings `[B, D]` float32 (projected end-of-text token, not normalised), on CPU."""
    tokens = tokenizer(list(texts)).to(device)
    with torch.inference_mode(), clip_autocast(device, autocast):
        embeddings = model.encode_text(tokens)
    return embeddings.float().cpu()


class ClipRuntime:
    """The built CLIP model and tokenizer of one processor: never serialised, and a deep copy starts empty."""

    def __init__(self):
        self.model = None
        self.tokenizer = None
        self.lock = threading.Lock()

    def __deepcopy__(self, memo):
        return ClipRuntime()

    def get_model(
        self,
        model_name: str,
        pretrained: str | None,
        device: torch.device,
        crop_size: tuple[int, int],
        dtype: str | None = None,
    ) -> torch.nn.Module:
        """The model, built on first use (its image size must be `crop_size` `(H, W)`) and moved to `device`, its
        weights in `dtype` (None: float32). Asked for another `dtype`, it is built again (casting a half-precision
        copy back would not restore the float32 weights)."""
        wanted = getattr(torch, dtype or "float32")
        with self.lock:
            if self.model is not None and weight_dtype(self.model) != wanted:
                self.model = None
            if self.model is None:
                model = build_clip_model(model_name, pretrained).to(wanted)
                image_size = tuple(model.visual.image_size)
                if image_size != tuple(crop_size):
                    raise ValueError(
                        f"CLIP model {model_name!r} takes {image_size} images but crop_size is "
                        f"{tuple(crop_size)}; set crop_size to the CLIP image size"
                    )
                self.model = model
            if next(self.model.parameters()).device != device:
                self.model.to(device)
            return self.model

    def get_tokenizer(self, model_name: str) -> Callable:
        """The open_clip tokenizer of `model_name`, built on first use."""
        import open_clip

        with self.lock:
            if self.tokenizer is None:
                self.tokenizer = open_clip.get_tokenizer(model_name)
            return self.tokenizer

    def to(self, device: torch.device) -> None:
        """Move the model to `device` if it is built (else it is built there on first use)."""
        with self.lock:
            if self.model is not None:
                self.model.to(device)


__all__ = [
    "CLIP_DTYPES",
    "ClipRuntime",
    "build_clip_model",
    "clip_autocast",
    "embed_images",
    "embed_texts",
    "parse_clip_dtype",
    "parse_clip_pretrained",
]
