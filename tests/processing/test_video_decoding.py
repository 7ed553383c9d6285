"""Decoding sampled frames from video files (PyAV), frame folders and arrays."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_mist.video_decoding_mist import VideoDecodeError, load_video_frames, sample_frame_indices
from tests.processing.video_testing import frame_level, make_frames, write_video


def sample(num_frames):
    return lambda metadata: sample_frame_indices(metadata.total_num_frames, num_frames)


def background(frames: np.ndarray) -> np.ndarray:
    """Grey level of each frame's top-left corner (the moving square never reaches it)."""
    return frames[:, :8, :8].reshape(len(frames), -1).mean(axis=1)


@pytest.mark.parametrize(
    "name, total_frames, tolerance",
    [("alpha.mp4", 30, 1.5), ("bravo.webm", 20, 1.5), ("charlie.avi", 16, 3.0), ("delta.mkv", 5, 1.5)],
)
def test_each_container_gives_the_sampled_frames(video_dir, name, total_frames, tolerance):
    frames, metadata = load_video_frames(os.path.join(video_dir, name), sample(8))
    expected_indices = sample_frame_indices(total_frames, 8)
    assert frames.shape == (8, 48, 64, 3) and frames.dtype == np.uint8
    assert metadata.total_num_frames == total_frames
    assert metadata.frames_indices == expected_indices.tolist()
    expected_levels = [frame_level(index) for index in expected_indices]
    np.testing.assert_allclose(background(frames), expected_levels, atol=tolerance)


def test_seeking_decodes_the_same_pixels_as_a_full_decode(tmp_path):
    # Key frame every 5 frames, B-frames, and 8 targets among 80 frames: most targets need a seek.
    path = write_video(str(tmp_path / "long.mp4"), num_frames=80, gop=5)
    every_frame, _ = load_video_frames(path)
    sampled, metadata = load_video_frames(path, sample(8))
    np.testing.assert_array_equal(sampled, every_frame[metadata.frames_indices])
    np.testing.assert_allclose(background(every_frame), [frame_level(i) for i in range(80)], atol=1.5)


def test_short_video_repeats_frames(video_dir):
    frames, metadata = load_video_frames(os.path.join(video_dir, "delta.mkv"), sample(8))
    assert metadata.frames_indices == [0, 0, 1, 1, 2, 3, 3, 4]
    np.testing.assert_array_equal(frames[0], frames[1])
    assert not np.array_equal(frames[1], frames[2])


def test_frame_folder_in_natural_order(tmp_path):
    images = make_frames(12)
    for index, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"frame_{index}.png")  # frame_10 sorts after frame_9
    frames, metadata = load_video_frames(str(tmp_path), sample(4))
    assert metadata.total_num_frames == 12
    np.testing.assert_array_equal(frames, images[sample_frame_indices(12, 4)])


@pytest.mark.parametrize("channels_first", [False, True])
def test_frame_array_numpy_and_torch(channels_first):
    images = make_frames(10)
    video = torch.from_numpy(images).permute(0, 3, 1, 2) if channels_first else images
    frames, _ = load_video_frames(video, sample(4))
    np.testing.assert_array_equal(frames, images[sample_frame_indices(10, 4)])


def test_bad_inputs_name_the_source_and_the_reason(tmp_path, video_dir):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(open(os.path.join(video_dir, "alpha.mp4"), "rb").read()[:1500])
    not_a_video = tmp_path / "notes.mkv"
    not_a_video.write_text("this is not a video")
    empty_folder = tmp_path / "no_frames"
    empty_folder.mkdir()
    for source, reason in [
        (truncated, "no video stream|cannot decode"),
        (not_a_video, "cannot decode"),
        (tmp_path / "missing.mp4", "no such file"),
        (empty_folder, "no frame images"),
    ]:
        with pytest.raises(VideoDecodeError, match=reason) as caught:
            load_video_frames(str(source), sample(4))
        assert str(source) in str(caught.value)
    with pytest.raises(VideoDecodeError, match="uint8"):
        load_video_frames(np.zeros((4, 8, 8, 3), dtype=np.float32))
    with pytest.raises(VideoDecodeError, match="shape"):
        load_video_frames(np.zeros((8, 8, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "faststart.mp4",
            {"faststart": True},
            r"truncated: its header declares 48 frames but only \d+ are in the file",
        ),
        ("cut.mkv", {}, r"truncated: its header declares 4\.0 s but the file holds [12]\.\d s"),
        ("cut.webm", {}, r"truncated: its header declares 4\.0 s but the file holds [12]\.\d s"),
    ],
)
def test_a_file_cut_in_half_that_still_opens_is_reported_as_truncated(tmp_path, name, options, message):
    whole = write_video(str(tmp_path / name), num_frames=48, **options)  # 4 s at 12 fps
    frames, metadata = load_video_frames(whole, sample(8))
    assert frames.shape[0] == 8 and metadata.total_num_frames == 48
    data = open(whole, "rb").read()
    cut = tmp_path / f"half-{name}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match=message) as caught:
        load_video_frames(str(cut), sample(8))
    assert str(cut) in str(caught.value) and "fetch it again" in str(caught.value)


def test_audio_that_outlasts_the_video_is_not_taken_for_truncation(tmp_path):
    """The container's duration is the longest stream's: 2 s of video with 4 s of audio is a whole file."""
    import av

    path = str(tmp_path / "talk.mkv")
    with av.open(path, "w") as container:
        video = container.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        for image in make_frames(24, 64, 48):
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        silence = np.zeros((1, 1024), dtype=np.float32)
        for start in range(0, 4 * 16000, 1024):
            frame = av.AudioFrame.from_ndarray(silence, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    with av.open(path) as container:
        assert container.duration / 1e6 > 3.5  # the audio's length, not the video's 2 s
    frames, metadata = load_video_frames(path, sample(4))
    assert frames.shape == (4, 48, 64, 3) and metadata.total_num_frames == 24
