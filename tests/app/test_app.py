"""The app's answer function, its demo samples and its `/answer` API endpoint through gradio_client."""

import os
import shutil

import av
import numpy as np
import pytest
from PIL import Image

from tests.pipeline.pipeline_testing import ANSWERS
from training.app import parse_choices


QUESTION = "what did the person hold?"
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # pandas deprecations inside gradio


def assert_ranked(answers, candidates, count):
    assert [set(item) for item in answers] == [{"answer", "score"}] * count
    scores = [item["score"] for item in answers]
    assert scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-5 and min(scores) > 0
    assert {item["answer"] for item in answers} <= set(candidates)


def test_parse_choices():
    assert parse_choices("  a red cup \n\n the blue box\n") == ["a red cup", "the blue box"]
    assert parse_choices("") is None and parse_choices(None) is None and parse_choices(" \n ") is None


def test_answer_gives_ranked_answers_a_picture_and_the_kept_segments_in_seconds(answerer, app_video):
    answers, label, picture, kept = answerer.answer(str(app_video), f"  {QUESTION} ", "")
    assert_ranked(answers, ANSWERS, count=5)
    assert answers == answerer.pipeline(str(app_video), QUESTION, top_k=5)
    assert label == {item["answer"]: item["score"] for item in answers}
    width, height = Image.open(picture).size
    assert width >= 900 and height >= 600  # kept frames are drawn 200 pixels wide
    # a 5-second video in 4 segments: each kept segment is named with its 1.25-second span
    lines = kept.splitlines()
    assert lines[0].startswith("* **ISTA layer 1** kept segment ") and lines[1].startswith("* **ISTA layer 2** kept")
    spans = {f"({1.25 * s:g}s-{1.25 * (s + 1):g}s" for s in range(4)}
    assert sum(span in kept for span in spans) >= 2

    choices = "a red cup\nthe blue box\nyes"
    answers, *_ = answerer.answer(str(app_video), QUESTION, choices)
    assert_ranked(answers, ["a red cup", "the blue box", "yes"], count=3)


def test_questions_about_one_video_run_clip_once(answerer, app_video, tmp_path, monkeypatch):
    from training.app import VideoQuestionAnswerer

    answerer = VideoQuestionAnswerer(answerer.pipeline, output_dir=tmp_path / "pictures")  # nothing cached yet
    calls = []
    video_processor = answerer.pipeline.processor.video_processor
    extract = video_processor.extract_features
    monkeypatch.setattr(video_processor, "extract_features", lambda *a, **k: calls.append(1) or extract(*a, **k))
    copy = tmp_path / "same.mp4"  # another upload of the same file
    shutil.copyfile(app_video, copy)
    first, *_ = answerer.answer(str(app_video), QUESTION, "")
    second, *_ = answerer.answer(str(copy), "where did the green ball go?", "")
    third, *_ = answerer.answer(str(copy), QUESTION, "")
    assert len(calls) == 1 and third == first and second != first


def test_answer_names_what_is_missing(answerer, app_video, tmp_path):
    with pytest.raises(ValueError, match="no video"):
        answerer.answer(None, QUESTION, "")
    with pytest.raises(ValueError, match="no question"):
        answerer.answer(str(app_video), "  ", "")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="broken.mp4: cannot decode"):
        answerer.answer(str(tmp_path / "broken.mp4"), QUESTION, "")


def test_demo_samples_are_answered_from_their_stored_features(answerer, app_video, tmp_path):
    from tests.training.training_testing import tiny_task_config, write_task

    from training.app_samples import SAMPLE_FPS, demo_samples
    from training.demo.synthetic_dataset import OBJECT_WORDS, QUESTION_KINDS, SyntheticVideoQA

    config = answerer.config
    write_task(tmp_path / "data", tiny_task_config(train_videos=2, eval_videos=3))
    samples = demo_samples(tmp_path, config, count=2)
    assert [sample.name for sample in samples] == ["test_00000", "test_00001"]
    for sample in samples:
        with av.open(sample.video) as container:
            stream = container.streams.video[0]
            assert sum(1 for _ in container.decode(stream)) == config.num_frames and stream.average_rate == SAMPLE_FPS
    # the page's upload is a copy somewhere else: recognised by its content
    sample = samples[1]
    upload = tmp_path / "upload" / "video.mp4"
    upload.parent.mkdir()
    shutil.copyfile(sample.video, upload)
    from training.app import VideoQuestionAnswerer

    with_samples = VideoQuestionAnswerer(answerer.pipeline, samples, output_dir=tmp_path / "pictures")
    example = with_samples.example(str(upload), sample.question, None)
    np.testing.assert_array_equal(example["frame_features"], sample.frame_features)
    np.testing.assert_array_equal(example["question_clip_embedding"], sample.question_clip_embedding)
    # a typed question is embedded as the task embeds its questions (object vectors + kind), without noise
    typed = with_samples.example(str(upload), "what appeared together with the cup?", None)["question_clip_embedding"]
    generator = SyntheticVideoQA(tiny_task_config())
    expected = (
        generator.object_vectors[OBJECT_WORDS.index("cup")]
        + 0.5 * generator.template_vectors[QUESTION_KINDS.index("together")]
    )
    np.testing.assert_allclose(typed, 10 * expected / np.linalg.norm(expected), rtol=1e-5)
    assert with_samples.example(samples[0].video, "q?", None)["frame_features"] is samples[0].frame_features
    answers, _, _, kept = with_samples.answer(str(upload), sample.question, "")
    stored = answerer.pipeline(
        {"frame_features": sample.frame_features, "patch_features": sample.patch_features, "question": sample.question,
         "question_clip_embedding": sample.question_clip_embedding}
    )  # fmt: skip
    assert [a["answer"] for a in answers] == [a["answer"] for a in stored]
    assert any(f"({0.5 * s:g}s-{0.5 * (s + 1):g}s" in kept for s in range(4))  # 8 frames at 4 fps: 0.5 s segments
    # a model that does not read CLIP's features (the synthetic demo's) refuses other videos before running CLIP
    with_samples.config = answerer.config.__class__(**{**answerer.config.to_dict(), "clip_hidden_size": 64})
    refused = r"reads 64-d video features but .* gives 16-d ones, .*\): pick one of the sample"
    with pytest.raises(ValueError, match=refused):
        with_samples.example(str(app_video), "q?", None)
    with_samples.config = answerer.config
    # a video that is no sample goes through CLIP, once
    clip_features = with_samples.example(str(app_video), "q?", None)
    assert clip_features["frame_features"].shape == (config.num_frames, config.clip_hidden_size)
    assert with_samples.example(str(app_video), "q?", None)["frame_features"] is clip_features["frame_features"]


def test_gradio_client_calls_the_answer_endpoint(served_app, answerer, app_video):
    from gradio_client import Client, handle_file

    client = Client(served_app.local_url, verbose=False)
    assert "/answer" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    ranked, label, picture, kept = client.predict(handle_file(str(app_video)), QUESTION, "", api_name="/answer")
    expected = answerer.pipeline(str(app_video), QUESTION, top_k=5)
    assert [item["answer"] for item in ranked] == [item["answer"] for item in expected]
    np.testing.assert_allclose([item["score"] for item in ranked], [item["score"] for item in expected], atol=1e-6)
    assert_ranked(ranked, ANSWERS, count=5)
    assert label["label"] == expected[0]["answer"]
    assert Image.open(picture).size[0] >= 900 and "ISTA layer 2" in kept
    ranked, *_ = client.predict(handle_file(str(app_video)), QUESTION, "yes\nno", api_name="/answer")
    assert_ranked(ranked, ["yes", "no"], count=2)
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no question"):
        client.predict(handle_file(str(app_video)), "", "", api_name="/answer")


def test_the_app_is_served_locally_without_analytics_or_share_link(served_app):
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert served_app.share is False and served_app.share_url is None
    assert served_app.local_url.startswith("http://127.0.0.1:")
