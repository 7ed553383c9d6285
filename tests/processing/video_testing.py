"""Small real videos, a tiny random CLIP config and helpers shared by the processing tests."""

import os
import subprocess
import sys

import av
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIP_EMBED_DIM = 16
NUM_FRAMES, GRID_SIZE = 8, 2
ANSWERS = ["yes", "no", "a red cup", "the blue box"]
WORDS = (
    "what is the person doing holding a red cup blue box green ball where did go after before yes no "
    "why how many color of one two three open close door table chair left right"
).split()

# open_clip model config: a 1-layer ViT with 224-pixel inputs (so a crop is one CLIP image) and a tiny text tower.
TINY_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": CLIP_EMBED_DIM,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}


def frame_level(index: int) -> int:
    """Grey level of frame `index`'s background: tells which frame a decoded image is."""
    return 10 + 3 * index  # distinct up to 80 frames


def make_frames(num_frames: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Frames `[T, H, W, 3]` uint8: a grey background that brightens frame by frame, a coloured square moving right."""
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    colours = [(230, 30, 30), (30, 230, 30), (30, 30, 230)]
    for index in range(num_frames):
        frames[index] = frame_level(index)
        left = (3 * index) % (width - 12)
        frames[index, height // 2 : height // 2 + 12, left : left + 12] = colours[index % 3]
    return frames


def write_video(
    path: str, num_frames: int = 24, width: int = 64, height: int = 48, gop: int = 4, faststart: bool = False
) -> str:
    """Encode `make_frames` with PyAV; the codec follows the suffix (near-lossless, key frame every `gop`).
    `faststart`: an MP4's index goes before the frames, as in files made for streaming and downloads."""
    suffix = os.path.splitext(path)[1]
    codec, options = {
        ".mp4": ("libx264", {"qp": "0", "g": str(gop), "bf": "2"}),
        ".mkv": ("libx264", {"qp": "0", "g": str(gop)}),
        ".webm": ("libvpx-vp9", {"lossless": "1", "g": str(gop)}),
        ".avi": ("mpeg4", {"qscale": "1", "g": str(gop)}),
    }[suffix]
    with av.open(path, "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream(codec, rate=12, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in make_frames(num_frames, width, height):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def run_python(args: list[str], cwd: str, env: dict | None = None, **kwargs):
    """A subprocess of this interpreter with the repository importable."""
    full_env = {**os.environ, "PYTHONPATH": REPO_ROOT, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, **kwargs)
