"""Frames to a video file with PyAV: `mist app`'s sample videos, the benchmarks' inputs and the tests' videos."""

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def encode_video(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: int,
    codec: str = "libx264",
    options: dict | None = None,
    container_options: dict | None = None,
) -> str | Path:
    """Encode `frames` (`[T, H, W, 3]` uint8, or any iterable of `[H, W, 3]` frames) into `path` as yuv420p at
    `fps`, with the codec's `options` (e.g. `{"crf": "18"}`, `{"qp": "0"}`, `{"g": "12"}`) and the container's
    (e.g. `{"movflags": "faststart"}`); returns `path`. Frames are cut to even sizes, as yuv420p needs."""
    import av

    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to encode into {path}; expected at least one [H, W, 3] frame")
    height, width = first.shape[0] // 2 * 2, first.shape[1] // 2 * 2
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in itertools.chain([first], frames):
            image = np.ascontiguousarray(image[:height, :width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


__all__ = ["encode_video"]
