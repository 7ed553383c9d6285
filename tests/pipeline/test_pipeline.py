"""pipeline("video-question-answering"): ranked answers, selections with times, batching, one CLIP pass per
video, dtype, the saved folder's pipeline code and its trust_remote_code load without this project."""

import json
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoProcessor, Trainer, TrainingArguments, pipeline

import modeling_mist  # noqa: F401  (registers the pipeline)
from modeling_mist.pipeline_mist import PIPELINE_ENTRY, TASK, MistVideoQuestionAnsweringPipeline
from tests.helpers import run_python
from tests.pipeline.pipeline_testing import ANSWERS, VIDEO_FPS, VIDEO_FRAMES, video_frames
from training.predict import answer_question

QUESTION = "what did the person hold?"
SEGMENT_KEYS = {"segment", "score", "start", "end", "frames"}
FRAME_KEYS = {"frame", "time", "patches", "patch_scores"}


@pytest.fixture(scope="module")
def answerer(model_dir):
    return pipeline(TASK, model=str(model_dir), device="cpu")


def assert_ranked(answers: list[dict], candidates: list[str], count: int) -> None:
    assert len(answers) == count
    assert all(set(item) == {"answer", "score"} for item in answers)
    scores = [item["score"] for item in answers]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < score <= 1 for score in scores) and sum(scores) <= 1 + 1e-5
    assert {item["answer"] for item in answers} <= set(candidates)
    assert len({item["answer"] for item in answers}) == count


def test_pipeline_ranks_the_vocabulary_like_the_model(answerer, model_dir, video_path):
    assert isinstance(answerer, MistVideoQuestionAnsweringPipeline)
    answers = answerer(str(video_path), QUESTION)
    assert_ranked(answers, ANSWERS, count=5)
    every = answerer(str(video_path), QUESTION, top_k=100)
    assert_ranked(every, ANSWERS, count=len(ANSWERS))
    assert sum(item["score"] for item in every) == pytest.approx(1.0, abs=1e-5)
    # the same scores as the model called by hand through the processor
    model, processor = AutoModel.from_pretrained(model_dir).eval(), AutoProcessor.from_pretrained(model_dir)
    expected, _, _ = answer_question(model, processor, QUESTION, video=str(video_path), top_k=len(ANSWERS))
    assert [item["answer"] for item in every] == [answer for answer, _ in expected]
    np.testing.assert_allclose([item["score"] for item in every], [score for _, score in expected], atol=1e-5)
    assert [item["answer"] for item in answerer(str(video_path), QUESTION, top_k=2)] == [a["answer"] for a in every[:2]]


def test_selection_times_come_from_the_video_frame_rate(answerer, video_path):
    result = answerer(str(video_path), QUESTION, return_selection=True)
    assert set(result) == {"answers", "selection", "video"}
    assert_ranked(result["answers"], ANSWERS, count=5)
    # 40 frames at 8 fps: 8 sampled frames, one per 5 source frames (the middle one), 4 segments of 1.25 s
    video = result["video"]
    assert video["fps"] == VIDEO_FPS and video["duration"] == VIDEO_FRAMES / VIDEO_FPS and video["unit"] == "seconds"
    assert video["total_frames"] == VIDEO_FRAMES
    assert video["frame_times"] == [(5 * frame + 2) / VIDEO_FPS for frame in range(8)]
    assert video["segment_bounds"] == [[1.25 * segment, 1.25 * (segment + 1)] for segment in range(4)]
    assert video["segment_frame_bounds"] == [[10 * segment, 10 * (segment + 1)] for segment in range(4)]
    assert [layer["layer"] for layer in result["selection"]] == [1, 2]
    for layer in result["selection"]:
        assert set(layer) == {"layer", "segment_scores", "segments"}
        assert len(layer["segment_scores"]) == 4 and sum(layer["segment_scores"]) == pytest.approx(1, abs=1e-4)
        kept = layer["segments"]
        assert len(kept) == 2 and len({segment["segment"] for segment in kept}) == 2  # k = 2 of 4
        assert [segment["score"] for segment in kept] == sorted(layer["segment_scores"], reverse=True)[:2]
        for segment in kept:
            assert set(segment) == SEGMENT_KEYS
            number = segment["segment"]
            assert segment["score"] == layer["segment_scores"][number]
            assert (segment["start"], segment["end"]) == (1.25 * number, 1.25 * (number + 1))
            assert [frame["frame"] for frame in segment["frames"]] == [2 * number, 2 * number + 1]
            for frame in segment["frames"]:
                assert set(frame) == FRAME_KEYS
                assert frame["time"] == (5 * frame["frame"] + 2) / VIDEO_FPS
                assert segment["start"] <= frame["time"] < segment["end"]
                assert len(frame["patch_scores"]) == 4 and sum(frame["patch_scores"]) == pytest.approx(1, abs=1e-4)
                assert len(frame["patches"]) == 2 and len(set(frame["patches"])) == 2  # j = 2 of 4 patches
                ranked = np.argsort(frame["patch_scores"])[::-1][:2].tolist()
                assert sorted(frame["patches"]) == sorted(ranked)


def test_frame_arrays_use_a_given_fps_else_frame_numbers(answerer):
    frames = video_frames()
    by_frame = answerer({"video": frames, "question": QUESTION}, return_selection=True, return_frames=True)
    assert by_frame["video"]["unit"] == "frames" and by_frame["video"]["fps"] is None
    assert by_frame["video"]["segment_bounds"][1] == [10, 20] and by_frame["video"]["frame_times"][0] == 2
    assert by_frame["frames"].shape == (8, 48, 64, 3)
    np.testing.assert_array_equal(by_frame["frames"][1], frames[7])  # the middle frame of source frames 5-9
    timed = answerer({"video": frames, "question": QUESTION, "fps": 4}, return_selection=True)
    assert timed["video"]["unit"] == "seconds" and timed["video"]["segment_bounds"][1] == [2.5, 5.0]
    assert timed["answers"] == by_frame["answers"]


def test_many_questions_about_one_video_encode_it_once(answerer, video_path, monkeypatch):
    calls = []
    extract = answerer.processor.video_processor.extract_features
    monkeypatch.setattr(
        answerer.processor.video_processor, "extract_features", lambda *a, **k: calls.append(1) or extract(*a, **k)
    )
    questions = [QUESTION, "where did the green ball go?", "what appeared together with a red cup?"]
    batched = answerer(str(video_path), questions)
    assert len(calls) == 1 and len(batched) == 3
    for question, answers in zip(questions, batched):  # batching changes nothing
        alone = answerer(str(video_path), question, top_k=5)
        assert [a["answer"] for a in answers] == [a["answer"] for a in alone]
        np.testing.assert_allclose([a["score"] for a in answers], [a["score"] for a in alone], atol=1e-5)
    calls.clear()
    frames = video_frames(24)
    mixed = answerer(
        [
            {"video": str(video_path), "question": QUESTION},
            {"video": frames, "question": QUESTION, "choices": ["a red cup", "the blue box", "yes"]},
            {"video": str(video_path), "question": "where did the green ball go?", "choices": ["yes", "no", "cup"]},
            {"video": frames, "question": "where did the green ball go?"},
        ],
        batch_size=3,
    )
    assert len(calls) == 2  # the path once and the array once, across both batches of the call
    assert_ranked(mixed[0], ANSWERS, count=5)
    assert_ranked(mixed[1], ["a red cup", "the blue box", "yes"], count=3)
    assert_ranked(mixed[2], ["yes", "no", "cup"], count=3)
    assert [a["answer"] for a in mixed[0]] == [a["answer"] for a in batched[0]]


def test_choices_and_multiple_choice_models(choice_model_dir, video_path):
    answerer = pipeline(TASK, model=str(choice_model_dir), device="cpu")
    choices = ["a red cup", "the blue box", "a green ball", "nothing"]
    answers = answerer(str(video_path), QUESTION, choices=choices, top_k=4)
    assert_ranked(answers, choices, count=4)
    assert sum(item["score"] for item in answers) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="multiple choice.*needs its choices"):
        answerer(str(video_path), QUESTION)


@pytest.mark.parametrize(
    "overrides",
    [{"frame_as_patch_candidate": True, "hidden_size": 16}, {"use_patch_selection": False}],
    ids=["frame-candidate", "no-patch-selection"],
)
def test_selection_of_the_reference_variants_is_described_and_drawn(overrides, video_path, tmp_path):
    from tests.pipeline.pipeline_testing import write_tiny_model

    from training.explain import draw_explanation, selections_of_result

    model_dir = write_tiny_model(tmp_path / "model", tmp_path / "parts", **overrides)
    answerer = pipeline(TASK, model=str(model_dir), device="cpu")
    result = answerer(str(video_path), QUESTION, return_selection=True, return_frames=True)
    assert_ranked(result["answers"], ANSWERS, count=5)
    for layer in result["selection"]:
        for segment in layer["segments"]:
            for frame in segment["frames"]:
                if overrides.get("use_patch_selection") is False:  # every patch kept, none scored
                    assert frame["patches"] == [0, 1, 2, 3] and frame["patch_scores"] is None
                else:  # 4 patches and the whole frame (index 4) compete
                    assert len(frame["patch_scores"]) == 5 and sum(frame["patch_scores"]) == pytest.approx(1, abs=1e-4)
                    assert len(frame["patches"]) == 2 and set(frame["patches"]) <= set(range(5))
    config = answerer.model.config
    png = draw_explanation(
        result["frames"], selections_of_result(result["selection"]), config.num_segments, config.grid_size,
        tmp_path / "variant.png", title=QUESTION, answers=result["answers"], timing=result["video"],
    )  # fmt: skip
    assert png.stat().st_size > 10_000


def test_bad_inputs_are_named(answerer, video_path):
    with pytest.raises(ValueError, match="question 0 is ''"):
        answerer(str(video_path), "")
    with pytest.raises(ValueError, match="has no video"):
        answerer({"question": QUESTION})
    with pytest.raises(ValueError, match="missing.mp4: no such file"):
        answerer(str(video_path.parent / "missing.mp4"), QUESTION)
    with pytest.raises(ValueError, match="unknown arguments"):
        answerer(str(video_path), QUESTION, top_n=3)


def test_dtype_and_device_as_every_pipeline(model_dir, video_path):
    answerer = pipeline(TASK, model=str(model_dir), device="cpu", dtype=torch.bfloat16)
    assert answerer.model.dtype == torch.bfloat16 and answerer.device == torch.device("cpu")
    assert_ranked(answerer(str(video_path), QUESTION), ANSWERS, count=5)


def test_saved_folders_carry_the_pipeline_code_and_entry(model_dir, tmp_path):
    assert (model_dir / "pipeline_mist.py").exists() and (model_dir / "video_decoding_mist.py").exists()
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["custom_pipelines"] == {TASK: PIPELINE_ENTRY}
    assert saved["auto_map"]["AutoModel"] == "modeling_mist.MistForVideoQuestionAnswering"
    # in this process the task is registered, so pipeline() must not ask for trust_remote_code
    assert AutoConfig.from_pretrained(model_dir).custom_pipelines == {}
    # the Trainer's save_model (what `mist train` does) writes the same
    model = AutoModel.from_pretrained(model_dir)
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none"))
    trainer.save_model(str(tmp_path / "trained"))
    assert json.loads((tmp_path / "trained" / "config.json").read_text())["custom_pipelines"] == {TASK: PIPELINE_ENTRY}
    assert (tmp_path / "trained" / "pipeline_mist.py").read_text() == (model_dir / "pipeline_mist.py").read_text()


def test_a_saved_pipeline_loads_back(answerer, video_path, tmp_path):
    answerer.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["custom_pipelines"] == {TASK: PIPELINE_ENTRY}
    reloaded = pipeline(TASK, model=str(tmp_path / "saved"), device="cpu")
    assert reloaded(str(video_path), QUESTION) == answerer(str(video_path), QUESTION)


def test_trust_remote_code_pipeline_where_the_project_is_not_importable(answerer, model_dir, video_path, tmp_path):
    expected = answerer(str(video_path), QUESTION, return_selection=True)
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys

        class BlockProject(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"modeling_mist", "processing", "training", "configuration"}}:
                    raise ImportError("the project is not importable here: " + name)

        sys.meta_path.insert(0, BlockProject())
        from transformers import pipeline

        try:
            pipeline({TASK!r}, model={str(model_dir)!r}, device="cpu", trust_remote_code=False)
            refused = None
        except ValueError as error:
            refused = str(error)
        answerer = pipeline({TASK!r}, model={str(model_dir)!r}, trust_remote_code=True, device="cpu")
        result = answerer({str(video_path)!r}, {QUESTION!r}, return_selection=True)
        print(json.dumps({{"class": type(answerer).__module__ + "." + type(answerer).__name__,
                           "model": type(answerer.model).__module__, "result": result, "refused": refused}}))
        """
    )
    # a blocked import system and an empty HF_MODULES_CACHE: the code must come from the saved folder
    env = {"PYTHONPATH": "", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = run_python(["-c", script], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "trust_remote_code" in report["refused"]  # the code is only run when asked to
    assert report["class"].startswith("transformers_modules.") and report["class"].endswith(
        "pipeline_mist.MistVideoQuestionAnsweringPipeline"
    )
    assert report["model"].startswith("transformers_modules.")
    remote = report["result"]
    assert [a["answer"] for a in remote["answers"]] == [a["answer"] for a in expected["answers"]]
    np.testing.assert_allclose(
        [a["score"] for a in remote["answers"]], [a["score"] for a in expected["answers"]], atol=1e-5
    )
    assert remote["selection"] == expected["selection"] and remote["video"] == expected["video"]


def test_batch_size_batches_the_questions_of_every_video(model_dir, video_path, monkeypatch):
    answerer = pipeline(TASK, model=str(model_dir), device="cpu", batch_size=2)
    batches = []
    forward = answerer.model.forward
    monkeypatch.setattr(answerer.model, "forward", lambda **k: batches.append(len(k["input_ids"])) or forward(**k))
    questions = [QUESTION, "where did the green ball go?", "what appeared together with a red cup?"]
    frames = video_frames(24)
    inputs = [{"video": str(video_path), "question": text} for text in questions] + [
        {"video": frames, "question": QUESTION, "choices": ["a red cup", "the blue box"]}
    ]
    batched = answerer(inputs)
    # 4 questions, 2 per batch; the second batch holds an open-ended and a choice question: one forward each
    assert batches == [2, 1, 1]
    batches.clear()
    alone = answerer(inputs, batch_size=1)
    assert batches == [1, 1, 1, 1]
    for together, single in zip(batched, alone):
        assert [a["answer"] for a in together] == [a["answer"] for a in single]
        np.testing.assert_allclose([a["score"] for a in together], [a["score"] for a in single], atol=1e-5)


def test_no_class_of_the_project_is_patched_at_import():
    from modeling_mist import MistConfig
    from transformers.configuration_utils import PreTrainedConfig

    assert not isinstance(vars(MistConfig).get("custom_pipelines"), property)  # a plain field, nothing hidden
    assert "custom_pipelines" not in vars(PreTrainedConfig)
    assert MistConfig.save_pretrained.__qualname__ == "MistConfig.save_pretrained"  # its own method, not a wrapper
    assert MistConfig().custom_pipelines == {} and MistConfig(custom_pipelines={"other": {}}).custom_pipelines == {
        "other": {}
    }


def test_the_vocabulary_is_embedded_once_per_model_placement(model_dir, video_path, monkeypatch):
    answerer = pipeline(TASK, model=str(model_dir), device="cpu")
    embedded = []
    embed = answerer.model.get_answer_embeddings
    monkeypatch.setattr(answerer.model, "get_answer_embeddings", lambda *a: embedded.append(1) or embed(*a))
    first = answerer(str(video_path), QUESTION)
    answerer(str(video_path), ["where did the green ball go?", QUESTION])
    assert len(embedded) == 1
    answerer.model.to(torch.float64)  # another dtype: the cached embeddings would be of the old weights
    again = answerer(str(video_path), QUESTION)
    assert len(embedded) == 2
    assert [a["answer"] for a in again] == [a["answer"] for a in first]
    np.testing.assert_allclose([a["score"] for a in again], [a["score"] for a in first], atol=1e-4)
