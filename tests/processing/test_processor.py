"""MistProcessor: the model's inputs from videos and questions, text-only use, save/load, remote code."""

import json
import os
import textwrap

import numpy as np
import pytest
import torch

from modeling_mist import MistConfig, MistForVideoQuestionAnswering
from modeling_mist.processing_mist import MistProcessor
from tests.helpers import CLIP_EMBED_DIM, run_python
from tests.processing.video_testing import ANSWERS, GRID_SIZE, NUM_FRAMES

QUESTIONS = ["what is the person holding?", "where did the green ball go after the door open"]
MODEL_INPUTS = {
    "frame_features",
    "patch_features",
    "question_clip_embeds",
    "input_ids",
    "attention_mask",
    "answer_input_ids",
    "answer_attention_mask",
}


def test_videos_and_questions_give_exactly_the_model_inputs(processor, video_dir):
    videos = [os.path.join(video_dir, "alpha.mp4"), os.path.join(video_dir, "bravo.webm")]
    inputs = processor(videos=videos, text=QUESTIONS)
    assert set(inputs) == MODEL_INPUTS
    assert inputs["frame_features"].shape == (2, NUM_FRAMES, CLIP_EMBED_DIM)
    assert inputs["patch_features"].shape == (2, NUM_FRAMES, GRID_SIZE**2, CLIP_EMBED_DIM)
    assert inputs["question_clip_embeds"].shape == (2, CLIP_EMBED_DIM)
    assert inputs["input_ids"].shape == inputs["attention_mask"].shape
    assert inputs["input_ids"].shape[0] == 2 and inputs["input_ids"].shape[1] <= 12
    assert inputs["answer_input_ids"].shape[0] == len(ANSWERS)
    for name in ("frame_features", "patch_features", "question_clip_embeds"):
        assert inputs[name].dtype == torch.float32
    for name in ("input_ids", "attention_mask", "answer_input_ids", "answer_attention_mask"):
        assert inputs[name].dtype == torch.long
    torch.testing.assert_close(inputs["question_clip_embeds"], processor.video_processor.encode_text(QUESTIONS))


def test_questions_are_tokenised_by_the_text_encoder_tokenizer(processor, tokenizer):
    inputs = processor(text=QUESTIONS)
    first = tokenizer(QUESTIONS[0])["input_ids"]
    assert inputs["input_ids"][0, : len(first)].tolist() == first
    assert inputs["attention_mask"][0].tolist() == [1] * len(first) + [0] * (inputs["input_ids"].shape[1] - len(first))
    assert tokenizer.unk_token_id not in inputs["input_ids"][0].tolist()


def test_text_only_call_returns_only_text_parts(processor):
    inputs = processor(text=QUESTIONS)
    assert set(inputs) == {"input_ids", "attention_mask", "answer_input_ids", "answer_attention_mask"}
    with_clip = processor(text=QUESTIONS, return_question_clip_embeds=True)
    assert with_clip["question_clip_embeds"].shape == (2, CLIP_EMBED_DIM)


def test_precomputed_features_pass_through(processor):
    frame_features = np.random.rand(2, NUM_FRAMES, CLIP_EMBED_DIM).astype(np.float16)
    patch_features = [np.random.rand(NUM_FRAMES, GRID_SIZE**2, CLIP_EMBED_DIM) for _ in range(2)]
    clip_embeds = torch.randn(2, CLIP_EMBED_DIM)
    inputs = processor(
        text=QUESTIONS, frame_features=frame_features, patch_features=patch_features, question_clip_embeds=clip_embeds
    )
    assert set(inputs) == MODEL_INPUTS
    torch.testing.assert_close(inputs["frame_features"], torch.from_numpy(frame_features).float())
    torch.testing.assert_close(inputs["patch_features"], torch.from_numpy(np.stack(patch_features)).float())
    assert inputs["patch_features"].dtype == torch.float32
    with pytest.raises(ValueError, match="batch size"):
        processor(text=QUESTIONS[:1], frame_features=frame_features)


def test_empty_question_is_rejected_by_name(processor):
    with pytest.raises(ValueError, match=r"question 1 is empty"):
        processor(text=["what is the person holding?", "   "])
    with pytest.raises(ValueError, match=r"question 0 is empty"):
        processor(text="")


def test_long_question_is_truncated(processor, tokenizer):
    long_question = " ".join(["what is the red cup"] * 20)
    inputs = processor(text=[long_question, "why"])
    assert inputs["input_ids"].shape == (2, processor.max_question_length)
    assert inputs["input_ids"][0, -1].item() == tokenizer.sep_token_id
    assert inputs["attention_mask"][0].all()


def test_answer_vocabulary_is_tokenised_once(processor, tokenizer, monkeypatch):
    calls = []
    original = processor.tokenizer.__class__.__call__

    def counting(self, text, *args, **kwargs):
        calls.append(list(text) if isinstance(text, (list, tuple)) else [text])
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(processor.tokenizer.__class__, "__call__", counting)
    first = processor(text=QUESTIONS)
    second = processor(text=QUESTIONS[:1])
    assert [batch for batch in calls if batch == ANSWERS] == [ANSWERS]  # one tokenisation of the vocabulary
    assert torch.equal(first["answer_input_ids"], second["answer_input_ids"])
    expected = tokenizer(ANSWERS, padding="longest")["input_ids"]
    assert first["answer_input_ids"].tolist() == expected


def test_multiple_choice_and_labels(processor, tokenizer):
    choices = [["yes", "no", "a red cup"], ["the blue box", "no", "one two three four five six"]]
    inputs = processor(text=QUESTIONS, choices=choices, labels=[2, "no"])
    assert inputs["answer_input_ids"].shape[:2] == (2, 3)
    assert inputs["answer_input_ids"].shape[2] <= processor.max_answer_length
    assert (
        inputs["answer_input_ids"][1, 0][inputs["answer_attention_mask"][1, 0].bool()].tolist()
        == (tokenizer("the blue box")["input_ids"])
    )
    assert inputs["labels"].tolist() == [2, 1]
    open_ended = processor(text=QUESTIONS, labels=["no", "the blue box"])
    assert open_ended["labels"].tolist() == [1, 3]
    with pytest.raises(ValueError, match="same"):
        processor(text=QUESTIONS, choices=[["yes", "no"], ["yes"]])
    with pytest.raises(ValueError, match="not among"):
        processor(text=QUESTIONS, labels=["maybe", "no"])


def test_answers_are_truncated_to_max_answer_length(tokenizer, video_processor):
    processor = MistProcessor(tokenizer, video_processor, answer_vocabulary=["yes " * 50], max_answer_length=6)
    assert processor(text="why")["answer_input_ids"].shape == (1, 6)


def test_save_and_load_round_trip_keeps_the_clip_choice_without_weights(processor, video_dir, tmp_path):
    processor.save_pretrained(tmp_path)
    saved = sorted(os.listdir(tmp_path))
    assert not [name for name in saved if name.endswith((".safetensors", ".bin", ".pt", ".pth"))]
    assert {"processing_mist.py", "video_processing_mist.py", "processor_config.json"} <= set(saved)
    loaded = MistProcessor.from_pretrained(tmp_path)
    video_processor = loaded.video_processor
    assert video_processor.clip_model_name == processor.video_processor.clip_model_name
    assert video_processor.clip_pretrained is None
    assert (video_processor.num_frames, video_processor.grid_size) == (NUM_FRAMES, GRID_SIZE)
    assert loaded.answer_vocabulary == ANSWERS and loaded.max_question_length == 12
    path = os.path.join(video_dir, "charlie.avi")
    torch.testing.assert_close(
        loaded(videos=path, text="why")["patch_features"], processor(videos=path, text="why")["patch_features"]
    )

    with_weights = MistProcessor(processor.tokenizer, processor.video_processor.__class__(clip_pretrained="weights.pt"))
    with_weights.save_pretrained(tmp_path / "tagged")
    assert MistProcessor.from_pretrained(tmp_path / "tagged").video_processor.clip_pretrained == "weights.pt"


def test_save_pretrained_copies_every_file_the_remote_code_imports(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    remote_code = {"processing_mist.py", "video_processing_mist.py", "video_decoding_mist.py", "clip_runtime_mist.py"}
    assert remote_code <= set(os.listdir(tmp_path))


def test_auto_processor_loads_with_remote_code_where_the_project_is_not_importable(processor, video_dir, tmp_path):
    saved = tmp_path / "saved"
    processor.save_pretrained(saved)
    video = os.path.join(video_dir, "alpha.mp4")
    expected = processor(videos=video, text=QUESTIONS[0])
    np.save(tmp_path / "expected.npy", expected["patch_features"].numpy())
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys
        import numpy as np

        class BlockProject(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"modeling_mist", "processing", "training", "configuration"}}:
                    raise ImportError("the project is not importable here: " + name)

        sys.meta_path.insert(0, BlockProject())
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained({str(saved)!r}, trust_remote_code=True)
        inputs = processor(videos={video!r}, text={QUESTIONS[0]!r})
        same = np.allclose(inputs["patch_features"].numpy(), np.load({str(tmp_path / "expected.npy")!r}), atol=1e-5)
        print(json.dumps({{
            "class": type(processor).__module__ + "." + type(processor).__name__,
            "shapes": {{name: list(value.shape) for name, value in inputs.items()}},
            "same_features": bool(same),
        }}))
        """
    )
    result = run_python(["-c", script], cwd=str(tmp_path), env={"PYTHONPATH": "", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["class"].startswith("transformers_modules.") and report["class"].endswith("MistProcessor")
    assert set(report["shapes"]) == MODEL_INPUTS
    assert report["shapes"]["patch_features"] == [1, NUM_FRAMES, GRID_SIZE**2, CLIP_EMBED_DIM]
    assert report["same_features"]


@pytest.fixture
def tiny_config(tokenizer) -> MistConfig:
    return MistConfig(
        text_config={
            "vocab_size": tokenizer.vocab_size,
            "hidden_size": 24,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "max_position_embeddings": 64,
        },
        hidden_size=32,
        num_attention_heads=4,
        num_hidden_layers=1,
        num_ista_layers=2,
        num_frames=NUM_FRAMES,
        num_segments=4,
        grid_size=GRID_SIZE,
        num_selected_segments=2,
        num_selected_patches=2,
        max_question_length=12,
        clip_hidden_size=CLIP_EMBED_DIM,
        id2label=dict(enumerate(ANSWERS)),
    )


def test_processor_output_feeds_the_model(tiny_config, tokenizer, clip_model_name, video_dir):
    processor = MistProcessor.from_mist_config(
        tiny_config, tokenizer, clip_model_name=clip_model_name, clip_pretrained=None
    )
    assert processor.answer_vocabulary == ANSWERS
    model = MistForVideoQuestionAnswering(tiny_config).eval()
    videos = [os.path.join(video_dir, "alpha.mp4"), os.path.join(video_dir, "delta.mkv")]
    inputs = processor(videos=videos, text=QUESTIONS, labels=["yes", "a red cup"])
    with torch.no_grad():
        outputs = model(**inputs)
    assert outputs.logits.shape == (2, len(ANSWERS))
    assert torch.isfinite(outputs.logits).all() and outputs.loss is not None

    choices = [["yes", "no", "a red cup"], ["no", "yes", "the blue box"]]
    inputs = processor(videos=videos, text=QUESTIONS, choices=choices)
    with torch.no_grad():
        assert model(**inputs).logits.shape == (2, 3)
