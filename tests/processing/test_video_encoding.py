"""`processing.video_encoding.encode_video`: frames (an array or a stream of them) to a video that decodes back."""

import numpy as np
import pytest

from modeling_mist.video_decoding_mist import load_video_frames
from processing.video_encoding import encode_video


def every_frame(path):
    frames, metadata = load_video_frames(str(path), lambda metadata: np.arange(metadata.total_num_frames))
    return frames, metadata


def test_frames_and_a_stream_of_them_give_the_same_video(tmp_path):
    frames = np.stack([np.full((48, 64, 3), 10 * index, np.uint8) for index in range(6)])
    array_path = encode_video(tmp_path / "array" / "clip.mp4", frames, 6, options={"qp": "0"})  # the folder is made
    stream_path = encode_video(tmp_path / "stream.mp4", iter(frames), 6, options={"qp": "0"})
    decoded, metadata = every_frame(array_path)
    assert decoded.shape == (6, 48, 64, 3) and metadata.fps == 6
    np.testing.assert_allclose(decoded.astype(int), frames.astype(int), atol=3)  # near-lossless yuv420p
    np.testing.assert_array_equal(every_frame(stream_path)[0], decoded)


def test_odd_sizes_are_cut_to_even_and_no_frames_is_an_error(tmp_path):
    frames = np.zeros((3, 49, 65, 3), np.uint8)
    decoded, _ = every_frame(encode_video(tmp_path / "odd.mp4", frames, 4))
    assert decoded.shape == (3, 48, 64, 3)
    with pytest.raises(ValueError, match="no frames to encode into .*empty.mp4; expected at least one"):
        encode_video(tmp_path / "empty.mp4", [], 4)
    assert not (tmp_path / "empty.mp4").exists()
