"""STAR-style clips: frames sampled between a question's start and end seconds, one feature row per question."""

import json

import numpy as np
import pytest
from datasets import load_from_disk

from modeling_mist.video_decoding_mist import VideoDecodeError, sample_clip_frame_indices, sample_frame_indices
from tests.processing.video_testing import NUM_FRAMES, frame_level, write_video
from training.cli.extract_features import main as extract

FPS = 12  # write_video's frame rate


def test_clip_indices_are_the_paper_sampling_inside_the_window():
    np.testing.assert_array_equal(sample_clip_frame_indices(48, 4, FPS, 1.0, 3.0), 12 + sample_frame_indices(24, 4))
    np.testing.assert_array_equal(sample_clip_frame_indices(48, 4, FPS, None, None), sample_frame_indices(48, 4))
    np.testing.assert_array_equal(sample_clip_frame_indices(48, 2, FPS, 3.5, 99.0), [43, 46])  # cut to the video
    with pytest.raises(VideoDecodeError, match="needs the video's frame rate"):
        sample_clip_frame_indices(48, 4, None, 1.0, 2.0)
    with pytest.raises(VideoDecodeError, match=r"ends \(1.0s\) before it starts \(2.0s\)"):
        sample_clip_frame_indices(48, 4, FPS, 2.0, 1.0)


def test_a_clip_decodes_the_frames_of_its_window(tmp_path, video_processor):
    video = write_video(str(tmp_path / "long.mp4"), num_frames=48)
    frames = video_processor.load_video(video, num_frames=4, start=1.0, end=3.0)
    expected = 12 + sample_frame_indices(24, 4)
    levels = np.array([frame[2, 2].mean() for frame in frames])  # background grey tells the frame (3 levels apart)
    np.testing.assert_allclose(levels, [frame_level(int(i)) for i in expected], atol=1.2)


def test_extraction_writes_one_row_per_question_clip(tmp_path, clip_model_name, video_processor):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(str(videos / "kitchen.mp4"), num_frames=48)
    questions = tmp_path / "train.jsonl"
    rows = [
        {
            "question_id": "Interaction_T1_1",
            "feature_id": "Interaction_T1_1",
            "video_id": "kitchen",
            "start": 0.0,
            "end": 2.0,
        },
        {
            "question_id": "Sequence_T2_7",
            "feature_id": "Sequence_T2_7",
            "video_id": "kitchen",
            "start": 2.0,
            "end": 4.0,
        },
        {"question_id": "Sequence_T2_8", "feature_id": "Sequence_T2_8", "video_id": "absent", "start": 0.0, "end": 1.0},
    ]
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "features"
    code = extract(
        [str(videos), "--clips", str(questions), "--output-dir", str(output), "--clip-model", clip_model_name,
         "--clip-pretrained", "none", "--num-frames", str(NUM_FRAMES), "--grid-size", "2", "--no-progress",
         "--dtype", "float32", "--clip-dtype", "float32"]
    )  # fmt: skip
    assert code == 0
    features = load_from_disk(str(output))
    assert sorted(features["video_id"]) == ["Interaction_T1_1", "Sequence_T2_7"]
    by_id = {row["video_id"]: np.asarray(row["frame_features"]) for row in features}
    late = video_processor(
        [video_processor.load_video(str(videos / "kitchen.mp4"), num_frames=NUM_FRAMES, start=2.0, end=4.0)]
    )["frame_features"][0].numpy()
    np.testing.assert_allclose(by_id["Sequence_T2_7"], late, atol=1e-5)
    assert not np.allclose(by_id["Interaction_T1_1"], by_id["Sequence_T2_7"], atol=1e-3)
