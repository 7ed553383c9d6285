"""Frame sampling: the middle frame of each of num_frames equal intervals, as the reference samples."""

import numpy as np
import pytest

from modeling_mist.video_decoding_mist import sample_frame_indices


def reference_uniform_indices(num_frames: int, total_frames: int) -> list[int]:
    """The reference's `sample_frames(..., sample='uniform')` (extract/dataloader_video.py), rewritten."""
    bounds = np.linspace(0, total_frames, num_frames + 1).astype(int)
    return [(start + end - 1) // 2 for start, end in zip(bounds[:-1], bounds[1:])]


def test_known_values():
    assert sample_frame_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert sample_frame_indices(32, 32).tolist() == list(range(32))  # one frame per interval: every frame
    assert sample_frame_indices(10, 1).tolist() == [4]


@pytest.mark.parametrize("total_frames", [32, 33, 47, 100, 299, 1000, 12345])
def test_matches_reference_when_the_video_is_long_enough(total_frames):
    assert sample_frame_indices(total_frames, 32).tolist() == reference_uniform_indices(32, total_frames)


def test_short_video_repeats_frames_in_order():
    assert sample_frame_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert sample_frame_indices(1, 4).tolist() == [0, 0, 0, 0]
    assert sample_frame_indices(5, 8).tolist() == [0, 0, 1, 1, 2, 3, 3, 4]


@pytest.mark.parametrize("total_frames", range(1, 70))
def test_indices_are_in_range_sorted_and_cover_the_video(total_frames):
    indices = sample_frame_indices(total_frames, 16)
    assert indices.shape == (16,)
    assert indices.min() >= 0 and indices.max() < total_frames
    assert (np.diff(indices) >= 0).all()
    if total_frames <= 16:
        assert set(indices.tolist()) == set(range(total_frames))  # a short video loses no frame


def test_rejects_empty_video_and_zero_frames():
    with pytest.raises(ValueError, match="total_frames"):
        sample_frame_indices(0, 8)
    with pytest.raises(ValueError, match="num_frames"):
        sample_frame_indices(10, 0)
