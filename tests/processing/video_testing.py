"""Small real videos, a tiny random CLIP config and helpers shared by the processing tests."""

import os

import numpy as np

from processing.video_encoding import encode_video
from tests import helpers

REPO_ROOT = str(helpers.REPO_ROOT)  # a str: the tests put it in environments
NUM_FRAMES, GRID_SIZE = 8, 2
ANSWERS = ["yes", "no", "a red cup", "the blue box"]
WORDS = (
    "what is the person doing holding a red cup blue box green ball where did go after before yes no "
    "why how many color of one two three open close door table chair left right"
).split()

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
    container_options = {"movflags": "faststart"} if faststart else None
    return encode_video(path, make_frames(num_frames, width, height), 12, codec, options, container_options)
