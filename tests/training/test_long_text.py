"""Questions longer than `max_question_length` and answers longer than `max_answer_length` are cut, whatever
`max_length` the tokenizer was saved with (all-MiniLM-L6-v2 carries 128): through the processor, the
collator, `mist predict` and `mist train`."""

import json
import logging

import numpy as np
import pytest
from transformers import BertTokenizer
from transformers.utils import logging as transformers_logging

from modeling_mist import MistProcessor, MistVideoProcessor
from tests.training.training_testing import question_rows, write_jsonl
from training.cli import main as mist
from training.collator import MistDataCollator

MAX_QUESTION, MAX_ANSWER = 12, 6
# 32 tokens of the tiny vocabulary (+ [CLS] and [SEP]): 31 words and "?"
LONG_QUESTION = (
    " ".join(("what appeared together with the cup near the beginning or end before".split() * 3)[:31]) + "?"
)
LONG_ANSWER = "red blue cup box yes no red blue cup box"


def saved_tokenizer(text_encoder_dir, folder, **init_kwargs) -> BertTokenizer:
    """The tiny BERT tokenizer, saved with `init_kwargs` and loaded back as a user would."""
    BertTokenizer(str(text_encoder_dir / "vocab.txt"), **init_kwargs).save_pretrained(str(folder))
    return BertTokenizer.from_pretrained(str(folder))


@pytest.fixture(params=["no saved max_length", "saved max_length 128"])
def tokenizer(request, text_encoder_dir, tmp_path):
    if request.param == "no saved max_length":
        loaded = saved_tokenizer(text_encoder_dir, tmp_path)
        assert "max_length" not in loaded.init_kwargs
    else:
        loaded = saved_tokenizer(text_encoder_dir, tmp_path, model_max_length=128, max_length=128)
        assert loaded.init_kwargs["max_length"] == 128 and loaded.model_max_length == 128
    return loaded


def tiny_processor(tokenizer, answers=("cup", LONG_ANSWER)) -> MistProcessor:
    video_processor = MistVideoProcessor(clip_pretrained=None, num_frames=8, grid_size=2)
    return MistProcessor(
        tokenizer,
        video_processor,
        answer_vocabulary=list(answers),
        max_question_length=MAX_QUESTION,
        max_answer_length=MAX_ANSWER,
    )


def test_long_question_is_cut_to_max_question_length(tokenizer):
    assert len(tokenizer(LONG_QUESTION)["input_ids"]) == 34
    inputs = tiny_processor(tokenizer)(text=[LONG_QUESTION, "what appeared?"])
    assert inputs["input_ids"].shape == (2, MAX_QUESTION)
    assert inputs["input_ids"][0, -1].item() == tokenizer.sep_token_id  # cut, then closed with [SEP]
    assert inputs["attention_mask"][1].tolist() == [1] * 5 + [0] * (MAX_QUESTION - 5)  # [CLS] what appeared ? [SEP]


def test_answers_and_choices_are_cut_to_max_answer_length(tokenizer):
    processor = tiny_processor(tokenizer)
    inputs = processor(text=["what appeared?"])  # the open-ended vocabulary
    assert inputs["answer_input_ids"].shape == (2, MAX_ANSWER)
    assert inputs["answer_attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0]  # [CLS] cup [SEP]
    inputs = processor(
        text=[LONG_QUESTION], choices=[[LONG_ANSWER, "cup", "box"]], choice_template="{question} {sep} {choice}"
    )
    assert inputs["answer_input_ids"].shape == (1, 3, MAX_ANSWER)
    assert inputs["input_ids"].shape == (1, MAX_QUESTION)


def test_collator_batches_long_questions_at_max_question_length(tokenizer):
    rng = np.random.default_rng(0)
    example = {
        "question": LONG_QUESTION,
        "frame_features": rng.standard_normal((8, 16)),
        "patch_features": rng.standard_normal((8, 4, 16)),
        "question_clip_embedding": rng.standard_normal(16),
        "labels": 0,
    }
    processor = tiny_processor(tokenizer)
    batch = MistDataCollator(processor, answer_vocabulary=processor.answer_vocabulary)([example, example])
    assert batch["input_ids"].shape == (2, MAX_QUESTION) and batch["answer_input_ids"].shape == (2, MAX_ANSWER)


def test_predict_answers_a_question_longer_than_max_question_length(tiny_model, tiny_task, capsys):
    video_id = question_rows(tiny_task[0], "test")[0]["video_id"]
    capsys.readouterr()
    code = mist(["predict", "--model", str(tiny_model.path), "--features", str(tiny_task[1]), "--video-id", video_id,
                 "--question", LONG_QUESTION])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out[out.index("{\n") :])
    assert result["question"] == LONG_QUESTION and len(result["answers"]) == 5


def test_train_on_questions_longer_than_max_question_length(tiny_task, text_encoder_dir, tmp_path, caplog):
    """Also: the data reports are INFO records, and the text encoders' load report is logged once."""
    for split in ("train", "validation"):
        rows = question_rows(tiny_task[0], split)
        for row in rows:
            row["question"] = f"{row['question']} {LONG_QUESTION}"
            row["answer"] = row["answer"] if split == "train" else LONG_ANSWER if row is rows[0] else row["answer"]
        write_jsonl(tmp_path / "questions" / f"{split}.jsonl", rows)
    caplog.set_level(logging.INFO)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_warning()  # another test (mist demo) may have quietened the library
    out = tmp_path / "out"
    code = mist(["train", "--dataset", str(tmp_path / "questions"), "--features", str(tiny_task[1]),
                 "--output-dir", str(out), "--preset", "tiny", "--text-encoder", str(text_encoder_dir),
                 "--clip_pretrained", "none", "--max_steps", "1"])  # fmt: skip
    assert code == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_num_questions"] == 16  # the long (unknown) answer is scored as wrong, not dropped
    reports = [record for record in caplog.records if "questions used" in record.getMessage()]
    assert [(record.levelname, record.getMessage()) for record in reports] == [
        ("INFO", "train: 48/48 questions used"),
        ("INFO", "validation: 16/16 questions used; 1 answers outside the vocabulary (scored as wrong)"),
    ]
    transformers_logging.set_verbosity(verbosity)
    load_reports = [record for record in caplog.records if "LOAD REPORT" in record.getMessage()]
    assert len(load_reports) == 1  # both text encoders load the same checkpoint: one report
