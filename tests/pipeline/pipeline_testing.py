"""Tiny saved MIST models and videos of known frame rate for the pipeline and app tests.

Everything is built here (tiny BERT with a written vocabulary, tiny open_clip config with random
weights via `local-dir:`, the `tiny` preset's sizes with 224-pixel crops); nothing is downloaded.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import torch
from transformers import BertTokenizer

from configuration.presets import TINY
from modeling_mist import MistConfig, MistForVideoQuestionAnswering, MistProcessor

REPO_ROOT = Path(__file__).resolve().parents[2]
FEATURE_DIM = 16  # the tiny preset's clip_hidden_size
ANSWERS = ["apple", "ball", "cup", "dog", "hat", "key"]
WORDS = [
    "what",
    "did",
    "the",
    "person",
    "hold",
    "appeared",
    "together",
    "with",
    "a",
    "red",
    "cup",
    "blue",
    "box",
    "green",
    "ball",
    "where",
    "go",
    "yes",
    "no",
]
VIDEO_FPS, VIDEO_FRAMES = 8, 40  # a 5-second video: 8 sampled frames, one every 5 source frames

TINY_CLIP_CONFIG = {  # a 1-layer ViT on 224-pixel crops and a 1-layer text tower, 16-d embeddings
    "model_cfg": {
        "embed_dim": FEATURE_DIM,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}


def write_tokenizer(folder: Path) -> BertTokenizer:
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", "."] + sorted(set(WORDS + ANSWERS))
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    return BertTokenizer(str(folder / "vocab.txt"))


def write_clip_config(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    return f"local-dir:{folder}"


def tiny_config(tokenizer: BertTokenizer, task: str = "open-ended", **overrides) -> MistConfig:
    kwargs = {**TINY.model, "crop_size": 224, "task": task, **overrides}
    kwargs["text_config"] = {**kwargs["text_config"], "vocab_size": len(tokenizer)}
    if task == "multiple-choice":
        kwargs["choice_template"] = "{question} {sep} {choice}"
    config = MistConfig(**kwargs)
    if task == "open-ended":
        config.set_answer_vocabulary(ANSWERS)
    return config


def write_tiny_model(folder: Path, work_dir: Path, task: str = "open-ended", seed: int = 0, **overrides) -> Path:
    """A random-weight tiny MIST (`overrides`: MistConfig fields) and its processor (tiny random CLIP) saved to `folder`."""
    tokenizer = write_tokenizer(work_dir / "tokenizer")
    clip_model_name = write_clip_config(work_dir / "clip")
    config = tiny_config(tokenizer, task, **overrides)
    torch.manual_seed(seed)
    model = MistForVideoQuestionAnswering(config).eval()
    processor = MistProcessor.from_mist_config(config, tokenizer, clip_model_name=clip_model_name, clip_pretrained=None)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def video_frames(num_frames: int = VIDEO_FRAMES, width: int = 64, height: int = 48) -> np.ndarray:
    """Frames `[T, H, W, 3]` uint8: a grey background that brightens, a green square moving right."""
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        frames[index] = 40 + (4 * index) % 200
        left = index * (width - 12) // max(num_frames - 1, 1)
        frames[index, 18:30, left : left + 12] = (20, 200, 20)
    return frames


def write_video(path: Path, fps: int = VIDEO_FPS, num_frames: int = VIDEO_FRAMES) -> Path:
    """`video_frames` as an H.264 mp4 at `fps` (near-lossless)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for image in video_frames(num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def run_python(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """A subprocess of this interpreter, quiet and offline."""
    full_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args],
        cwd=str(cwd),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
