"""The scaling benchmark's cheap long videos: the length and frame count asked for, decodable where sampled."""

import importlib.util
from pathlib import Path

import av
import numpy as np

from modeling_mist.video_decoding_mist import load_video_frames, sample_frame_indices

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "benchmark_scaling.py"


def test_repeated_key_frame_intervals_make_a_video_of_the_asked_length(tmp_path):
    spec = importlib.util.spec_from_file_location("benchmark_scaling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = str(tmp_path / "long.mp4")
    module.write_video(path, seconds=12, fps=5, gop_seconds=2, width=96, height=64)
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert stream.frames == 60 and container.duration / 1e6 == 12
        key_frames = [packet.is_keyframe for packet in container.demux(stream) if packet.size]
    assert len(key_frames) == 60 and sum(key_frames) == 6  # one key frame per 2 s interval
    frames, metadata = load_video_frames(path, lambda metadata: sample_frame_indices(metadata.total_num_frames, 4))
    assert frames.shape == (4, 64, 96, 3) and metadata.total_num_frames == 60
    assert np.abs(frames.astype(int) - frames[0].astype(int)).sum() > 0  # the block moves: not one frame repeated
