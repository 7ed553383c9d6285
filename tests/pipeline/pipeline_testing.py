"""Tiny saved MIST models and videos of known frame rate for the pipeline and app tests.

Everything is built here (tiny BERT with a written vocabulary, tiny open_clip config with random
weights via `local-dir:`, the `tiny` preset's sizes with 224-pixel crops); nothing is downloaded.
"""

from pathlib import Path

import numpy as np
import torch
from transformers import BertTokenizer

from modeling_mist import MistConfig, MistForVideoQuestionAnswering, MistProcessor
from processing.video_encoding import encode_video
from tests.helpers import TINY, write_clip_config

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

def write_tokenizer(folder: Path) -> BertTokenizer:
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", "."] + sorted(set(WORDS + ANSWERS))
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    return BertTokenizer(str(folder / "vocab.txt"))


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
    return encode_video(path, video_frames(num_frames), fps, options={"qp": "0"})
