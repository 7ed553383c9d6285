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
    """The precision CLIP runs in: None for `"auto"` (see `clip_weights_dtype_on`), or the name of the type its
    weights are cast to once (`"float32"`, `"float16"`, `"bfloat16"`)."""
    if isinstance(value, torch.dtype):
        value = str(value).removeprefix("torch.")
    if value is None or value == "auto":
        return None
    if value not in CLIP_DTYPES:
        raise ValueError(f"clip_dtype {value!r}: expected 'auto' or one of {', '.join(map(repr, CLIP_DTYPES))}")
    return value


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX), where bf16 weights about
    double CLIP's speed over float32; elsewhere bf16 is emulated and slower than float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def clip_weights_dtype_on(clip_dtype: str | None, device: torch.device) -> str | None:
    """The type CLIP's weights take on `device`: `clip_dtype` when one is chosen; for the auto precision (None)
    bfloat16 on a CPU with native bf16 (features within cosine 0.9999 of float32's), else None (float32 weights,
    under fp16 autocast on a GPU)."""
    if clip_dtype is not None:
        return clip_dtype
    return "bfloat16" if device.type == "cpu" and cpu_has_native_bfloat16() else None


def build_clip_model(model_name: str, pretrained: str | None) -> torch.nn.Module:
    """An open_clip model on CPU in eval mode, frozen.

    `pretrained` is an open_clip tag (`"openai"`), a checkpoint file, or None for random weights drawn
    from a fixed seed, so that every process builds the same model. A `local-dir:` or `hf-hub:` model
    name carries its own weights (none in the folder also means seeded random weights).
    """
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model = open_clip.create_model(model_name, pretrained=pretrained, device="cpu")
        except Exception as error:  # noqa: BLE001  (the Hub client, open_clip and torch raise many kinds)
            if pretrained is None or os.path.isfile(pretrained) or "connect" not in f"{type(error)} {error}".lower():
                raise
            raise OSError(
                f"CLIP weights {pretrained!r} of {model_name} could not be downloaded ({type(error).__name__}); "
                "offline, pass clip_pretrained=FILE (a local open_clip checkpoint; --clip-pretrained FILE) or "
                "'none' (random weights, tests only)"
            ) from error
        if is_plain_vision_transformer(model.visual):  # inside the seeded block: its new layers draw an init
            model.visual = InferenceImageTower(model.visual)
    return model.eval().requires_grad_(False)


QUICK_GELU_SCALE = 1.702  # QuickGELU(x) = x * sigmoid(1.702 x) = silu(1.702 x) / 1.702


def is_plain_vision_transformer(visual: torch.nn.Module) -> bool:
    """Whether `visual` is open_clip's plain ViT image tower (OpenAI's CLIP layout: class token pooled, a final
    projection, pre-norm blocks of torch multi-head attention and a GELU or QuickGELU MLP, no layer scale)."""
    from open_clip.transformer import QuickGELU, ResidualAttentionBlock, VisionTransformer

    if type(visual) is not VisionTransformer or visual.attn_pool is not None or visual.pool_type != "tok":
        return False
    if visual.proj is None or visual.final_ln_after_pool or visual.output_tokens:
        return False
    return all(
        type(block) is ResidualAttentionBlock
        and isinstance(block.ls_1, torch.nn.Identity)
        and isinstance(block.ls_2, torch.nn.Identity)
        and type(block.mlp.gelu) in (QuickGELU, torch.nn.GELU)
        and block.attn.batch_first
        for block in visual.transformer.resblocks
    )


class InferenceBlock(torch.nn.Module):
    """One pre-norm transformer block of `InferenceImageTower`, its MLP in SiLU form when it was QuickGELU."""

    def __init__(self, block: torch.nn.Module):
        from open_clip.transformer import QuickGELU

        super().__init__()
        self.num_heads = block.attn.num_heads
        self.ln_1, self.ln_2 = block.ln_1, block.ln_2
        self.qkv = torch.nn.Linear(block.attn.embed_dim, 3 * block.attn.embed_dim)
        self.qkv.weight.copy_(block.attn.in_proj_weight)
        self.qkv.bias.copy_(block.attn.in_proj_bias)
        self.out_proj = block.attn.out_proj
        self.fc, self.proj = block.mlp.c_fc, block.mlp.c_proj
        self.quick_gelu = type(block.mlp.gelu) is QuickGELU
        if self.quick_gelu:  # fold the 1.702 into the weights around the activation, in float32 before any cast
            self.fc = torch.nn.Linear(self.fc.in_features, self.fc.out_features)
            self.fc.weight.copy_(block.mlp.c_fc.weight * QUICK_GELU_SCALE)
            self.fc.bias.copy_(block.mlp.c_fc.bias * QUICK_GELU_SCALE)
            self.proj = torch.nn.Linear(self.proj.in_features, self.proj.out_features)
            self.proj.weight.copy_(block.mlp.c_proj.weight / QUICK_GELU_SCALE)
            self.proj.bias.copy_(block.mlp.c_proj.bias)

    def attention(self, hidden_states: torch.Tensor, class_token_only: bool) -> torch.Tensor:
        batch, tokens, width = hidden_states.shape
        head_dim = width // self.num_heads
        qkv = self.qkv(hidden_states).view(batch, tokens, 3, self.num_heads, head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each [batch, heads, tokens, head_dim]
        if class_token_only:
            query = query[:, :, :1]
        if hidden_states.device.type == "cpu":
            # For ~50 tokens two batched products around a float32 softmax beat SDPA's CPU kernels.
            scores = torch.matmul(query, key.transpose(-1, -2)).float().mul_(head_dim**-0.5)
            attended = torch.matmul(scores.softmax(-1).to(value.dtype), value)
        else:
            attended = torch.nn.functional.scaled_dot_product_attention(query, key, value)
        return self.out_proj(attended.transpose(1, 2).reshape(batch, query.shape[2], width))

    def forward(self, hidden_states: torch.Tensor, class_token_only: bool = False) -> torch.Tensor:
        attended = self.attention(self.ln_1(hidden_states), class_token_only)
        hidden_states = (hidden_states[:, :1] if class_token_only else hidden_states) + attended
        inner = self.fc(self.ln_2(hidden_states))
        inner = torch.nn.functional.silu(inner) if self.quick_gelu else torch.nn.functional.gelu(inner)
        return hidden_states + self.proj(inner)


class InferenceImageTower(torch.nn.Module):
    """open_clip's plain ViT image tower (see `is_plain_vision_transformer`) for inference: the same embeddings
    `[N, output_dim]` of images `[N, 3, S, S]`, with less work besides the matrix products.

    The patch embedding is one matrix product, each block one QKV product, QuickGELU one SiLU pass (its 1.702
    folded into the weights), and the last block computes attention and MLP for the class token alone, the only
    token pooled. Built from the float32 tower, before any cast.
    """

    def __init__(self, visual: torch.nn.Module):
        super().__init__()
        self.image_size, self.output_dim = visual.image_size, visual.output_dim
        self.patch_size, self.grid_size = visual.conv1.kernel_size[0], visual.grid_size
        width = visual.conv1.out_channels
        self.patch_embedding = torch.nn.Parameter(visual.conv1.weight.detach().reshape(width, -1).clone())
        self.class_embedding, self.positional_embedding = visual.class_embedding, visual.positional_embedding
        self.ln_pre, self.ln_post, self.proj = visual.ln_pre, visual.ln_post, visual.proj
        with torch.no_grad():
            self.blocks = torch.nn.ModuleList(InferenceBlock(block) for block in visual.transformer.resblocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = images.shape
        rows, columns = height // self.patch_size, width // self.patch_size
        patches = images.reshape(batch, channels, rows, self.patch_size, columns, self.patch_size)
        patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, rows * columns, -1)  # [N, patches, 3 * p * p]
        patch_tokens = torch.nn.functional.linear(patches, self.patch_embedding) + self.positional_embedding[1:]
        class_token = (self.class_embedding + self.positional_embedding[0]).expand(batch, 1, -1)
        hidden_states = self.ln_pre(torch.cat([class_token, patch_tokens], dim=1))  # [N, 1 + patches, width]
        for index, block in enumerate(self.blocks):
            hidden_states = block(hidden_states, class_token_only=index == len(self.blocks) - 1)
        return self.ln_post(hidden_states[:, 0]) @ self.proj  # [N, output_dim]


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


CPU_TOKENS_PER_FORWARD = 1600  # on a CPU a block's activations then stay in cache (ViT-B/32: 32 images, ~10 MB in bf16)


def images_per_forward(model: torch.nn.Module, device: torch.device, batch_size: int) -> int:
    """`batch_size`, on a CPU capped so that a forward holds about `CPU_TOKENS_PER_FORWARD` tokens: large forwards
    make the element-wise work between the matrix products run from memory instead of cache."""
    if device.type != "cpu":
        return batch_size
    grid_size = getattr(model.visual, "grid_size", None)  # patches per side (open_clip's ViTs and ours)
    if grid_size is None:
        return batch_size
    tokens = 1 + grid_size[0] * grid_size[1]
    return max(1, min(batch_size, CPU_TOKENS_PER_FORWARD // tokens))


def embed_images(
    model: torch.nn.Module, pixel_values: torch.Tensor, batch_size: int, autocast: bool = True
) -> torch.Tensor:
    """CLIP image embeddings `[N, D]` float32 of normalised images `[N, 3, S, S]`, `batch_size` images a forward
    (fewer on a CPU, see `images_per_forward`); `autocast`: fp16 autocast on GPU (see `clip_autocast`), else the
    images are cast to the weights' type."""
    num_images = pixel_values.shape[0]
    batch_size = images_per_forward(model, pixel_values.device, batch_size)
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
    "InferenceImageTower",
    "build_clip_model",
    "clip_autocast",
    "clip_weights_dtype_on",
    "cpu_has_native_bfloat16",
    "embed_images",
    "embed_texts",
    "parse_clip_dtype",
    "parse_clip_pretrained",
]
