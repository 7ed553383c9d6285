"""Multiple-choice data as it comes: answers as text or as the index of the right choice (NExT-QA's
convention), unequal numbers of choices and ambiguous duplicate choices counted with their question ids."""

import json

import numpy as np
import pytest
from datasets import Dataset

from tests.training.training_testing import question_rows, write_features, write_jsonl
from training.cli import main as mist
from training.collator import MistDataCollator
from training.data import MistQuestionDataset, VideoFeatureStore, choice_label, load_features

CHOICES = ["to throw it", "to hide it", "2", "to eat it", "to sell it"]


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("to hide it", (1, False)),  # the text of a choice
        (3, (3, True)),  # the index (an int column)
        ("4", (4, True)),  # the index written as text (a csv or a string column)
        (" 0 ", (0, True)),
        ("2", (2, False)),  # "2" is also the text of choice 2: the text wins
        (5, (-100, False)),  # out of range
        ("to dance", (-100, False)),
        (True, (-100, False)),  # a boolean is no index
    ],
)
def test_answer_is_a_choice_text_or_its_index(answer, expected):
    assert choice_label(answer, CHOICES) == expected


@pytest.fixture
def store(tmp_path):
    return VideoFeatureStore(load_features(str(write_features(tmp_path / "features", ["v0", "v1"], 8, 4, 16))))


def mc_questions() -> Dataset:
    rows = [
        {"question_id": "q0", "video_id": "v0", "question": "why?", "answer": "1", "choices": ["a", "b", "c"]},
        {"question_id": "q1", "video_id": "v1", "question": "why?", "answer": "c", "choices": ["a", "b", "c"]},
        {"question_id": "q2", "video_id": "v0", "question": "why?", "answer": "a", "choices": ["a", "b", "c", "d"]},
        {"question_id": "q3", "video_id": "v1", "question": "why?", "answer": "b", "choices": ["b", "a", "b"]},
        {"question_id": "q4", "video_id": "v0", "question": "why?", "answer": "2", "choices": ["a", "a", "b"]},
        {"question_id": "q5", "video_id": "v1", "question": "why?", "answer": "z", "choices": ["a", "b", "c"]},
        {"question_id": "q6", "video_id": "v9", "question": "why?", "answer": "a", "choices": ["a", "b", "c"]},
    ]
    return Dataset.from_list(rows)


def test_training_drops_unequal_counts_and_ambiguous_duplicates_and_names_them(store):
    dataset = MistQuestionDataset(mc_questions(), store, split="train")
    assert dataset.column("question_id") == ["q0", "q1", "q4"] and dataset.labels == [1, 2, 2]
    assert dataset.report.as_dict() == {
        "split": "train",
        "total": 7,
        "kept": 3,
        "missing_features": 1,
        "answer_not_in_vocabulary": 0,
        "answer_not_in_choices": 1,
        "kept_without_label": 0,
        "missing_video_examples": ["v9"],
        "choice_count": 3,
        "answer_given_as_index": 2,
        "answer_not_in_choices_examples": ["q5"],
        "unequal_choice_counts": 1,
        "unequal_choice_examples": ["q2"],
        "ambiguous_duplicate_choices": 1,
        "ambiguous_duplicate_examples": ["q3"],
    }
    assert dataset.report.summary() == (
        "train: 3/7 questions used; 1 without video features (e.g. ['v9']); 1 answers not among their choices "
        "(dropped: ['q5']); 1 questions without 3 choices (dropped: ['q2']); 1 answers matching several "
        "identical choices (dropped: ['q3']); 2 answers read as the index of the right choice"
    )


def test_evaluation_keeps_ambiguous_duplicates_scored_against_the_first_copy(store):
    dataset = MistQuestionDataset(mc_questions(), store, keep_unlabeled=True, split="test")
    assert dataset.column("question_id") == ["q0", "q1", "q3", "q4", "q5"]
    assert dataset.labels == [1, 2, 0, 2, -100]
    assert "1 answers matching several identical choices (kept, the first copy counts as right: ['q3'])" in (
        dataset.report.summary()
    )


def test_collator_names_the_questions_of_a_batch_with_different_choice_counts(text_encoder_dir):
    from transformers import BertTokenizer

    from modeling_mist import MistConfig, MistProcessor

    config = MistConfig(task="multiple-choice", num_frames=8, num_segments=4, grid_size=2, num_selected_patches=2)
    processor = MistProcessor.from_mist_config(
        config, BertTokenizer.from_pretrained(str(text_encoder_dir)), clip_pretrained=None
    )
    rng = np.random.default_rng(0)

    def example(question_id, choices):
        return {
            "question_id": question_id,
            "question": "why?",
            "choices": choices,
            "frame_features": rng.standard_normal((8, 16)),
            "patch_features": rng.standard_normal((8, 4, 16)),
            "question_clip_embedding": rng.standard_normal(16),
        }

    collator = MistDataCollator(processor)
    with pytest.raises(ValueError) as raised:
        collator([example("q7", ["a", "b"]), example("q9", ["a", "b", "c"])])
    assert str(raised.value) == (
        "questions of one batch have different numbers of choices (q7: 2, q9: 3); a batch needs one count: drop or "
        "pad the odd questions (MistQuestionDataset drops them and lists them in its report)"
    )


def test_train_and_evaluate_with_index_answers_and_odd_questions(tiny_task, text_encoder_dir, tmp_path, capsys):
    questions, features = tiny_task
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        rows = question_rows(questions, split)
        for row in rows:
            choices = [word for word in ("cup", "box", "hat", "dog", "key") if word != row["answer"]][:3] + [
                row["answer"]
            ]
            rng.shuffle(choices)
            row["choices"], row["answer"] = choices, choices.index(row["answer"])  # NExT-QA: the index
        rows[0]["choices"] = rows[0]["choices"][:3] + ["lamp", "shoe"]  # 5 choices among 4-choice questions
        rows[1]["choices"][(rows[1]["answer"] + 1) % 4] = rows[1]["choices"][
            rows[1]["answer"]
        ]  # a duplicate right answer
        write_jsonl(tmp_path / "questions" / f"{split}.jsonl", rows)
    out = tmp_path / "out"
    code = mist(["train", "--dataset", str(tmp_path / "questions"), "--features", str(features),
                 "--output-dir", str(out), "--preset", "tiny", "--text-encoder", str(text_encoder_dir),
                 "--clip_pretrained", "none", "--max_steps", "2", "--eval_split", "none"])  # fmt: skip
    assert code == 0
    train_report, test_report = json.loads((out / "data_report.json").read_text())
    first_ids = [row["question_id"] for row in question_rows(questions, "train")[:2]]
    assert (train_report["kept"], train_report["answer_given_as_index"], train_report["choice_count"]) == (46, 47, 4)
    assert train_report["unequal_choice_examples"] == [first_ids[0]]
    assert train_report["ambiguous_duplicate_examples"] == [first_ids[1]]
    assert (test_report["kept"], test_report["unequal_choice_counts"], test_report["ambiguous_duplicate_choices"]) == (
        15,
        1,
        1,
    )
    assert json.loads((out / "test_results.json").read_text())["test_num_questions"] == 15
    card = (out / "README.md").read_text()
    assert (
        "1 without 4 choices (dropped); 1 answers among identical choices; 47 answers given as a choice index" in card
    )

    capsys.readouterr()
    assert (
        mist(["evaluate", "--model", str(out), "--dataset", str(tmp_path / "questions"), "--features", str(features)])
        == 0
    )
    evaluated = json.loads((out / "eval" / "results_test.json").read_text())
    assert evaluated["num_questions"] == 15 and evaluated["data"]["unequal_choice_counts"] == 1
