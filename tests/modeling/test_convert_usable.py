"""A converted checkpoint answers questions as it comes: the converter saves the processor (tokenizer, CLIP choice,
answers) beside the model, or says in one line how to, and loading a folder without one says why it fails."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, BertTokenizer, pipeline

import modeling_mist.convert_original_checkpoint as converter
from modeling_mist import MistForVideoQuestionAnswering
from modeling_mist.convert_original_checkpoint import main as convert_main
from tests.modeling.mist_testing import VOCAB, tiny_config
from tests.modeling.test_convert_original_checkpoint import to_reference_checkpoint
from training.cli import main as mist


@pytest.fixture
def original(tmp_path):
    config = tiny_config()
    torch.manual_seed(0)
    to_reference_checkpoint(MistForVideoQuestionAnswering(config).eval(), tmp_path / "original.pth")
    flags = ["--num-frames", str(config.num_frames), "--num-segments", str(config.num_segments),
             "--grid-size", str(config.grid_size), "--num-selected-segments", str(config.num_selected_segments),
             "--num-selected-patches", str(config.num_selected_patches)]  # fmt: skip
    return config, [str(tmp_path / "original.pth"), str(tmp_path / "converted"), *flags]


def write_tokenizer(folder, size: int) -> str:
    words = [f"word{index}" for index in range(size - 7)] + ["ball", "cup"]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    return str(folder)


def test_the_converted_folder_answers_with_its_tokenizer_and_answers(original, tmp_path, capsys):
    config, arguments = original
    tokenizer = write_tokenizer(tmp_path / "tokenizer", VOCAB)
    (tmp_path / "vocab.json").write_text(json.dumps({"cup": 1, "ball": 0}))  # the original's answer -> index
    capsys.readouterr()
    answers = ["--answer-vocabulary", str(tmp_path / "vocab.json")]
    assert convert_main([*arguments, "--tokenizer", tokenizer, *answers]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"wrote the processor (tokenizer {tokenizer}, CLIP ViT-B-32-quickgelu with openai weights)"
    )
    converted = tmp_path / "converted"
    assert AutoProcessor.from_pretrained(converted).answer_vocabulary == ["ball", "cup"]
    answerer = pipeline("video-question-answering", model=str(converted), device="cpu")
    width = config.clip_hidden_size
    answers = answerer(
        {"frame_features": np.ones((config.num_frames, width), np.float32),
         "patch_features": np.ones((config.num_frames, config.grid_size**2, width), np.float32),
         "question_clip_embedding": np.ones(width, np.float32), "question": "what is the word1?"}
    )  # fmt: skip
    assert sorted(answer["answer"] for answer in answers) == ["ball", "cup"]


def test_without_a_tokenizer_at_hand_the_converter_and_predict_say_what_to_do(
    original, tmp_path, capsys, monkeypatch
):
    _, arguments = original
    monkeypatch.setitem(converter.REFERENCE_TOKENIZERS, "agqa", "no-such-owner/no-such-tokenizer")
    capsys.readouterr()
    assert convert_main(arguments) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "no processor written (no-such-owner/no-such-tokenizer, the reference tokenizer, is not in the local Hugging "
        "Face cache): to use the folder with `mist predict` or the pipeline, convert again with --tokenizer "
        "no-such-owner/no-such-tokenizer (downloads it) or --tokenizer DIR; no answer vocabulary: pass "
        "--answer-vocabulary vocab.json to answer open-ended questions"
    )
    converted = tmp_path / "converted"
    assert mist(["predict", "--model", str(converted), "--video", "clip.mp4", "--question", "what?"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"mist predict: {converted}: no processor_config.json (the tokenizer, CLIP choice and answers saved beside "
        "the model); a checkpoint converted without a tokenizer: convert it again with --tokenizer NAME_OR_DIR"
    )


def test_a_tokenizer_of_another_vocabulary_is_refused(original, tmp_path, capsys):
    _, arguments = original
    tokenizer = write_tokenizer(tmp_path / "small", VOCAB - 3)
    assert convert_main([*arguments, "--tokenizer", tokenizer]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: --tokenizer {tokenizer}: {VOCAB - 3} tokens, but the checkpoint's text encoders have {VOCAB}; "
        "expected the tokenizer the model was trained with (bert-base-uncased for agqa)"
    )
    assert not (tmp_path / "converted").exists()  # refused before anything was written
