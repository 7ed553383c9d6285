"""`mist train` / `mist evaluate` on the tiny synthetic task: complete output folder, JSON results, resuming."""

import json

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from safetensors.torch import load_file
from transformers import AutoModel, AutoProcessor

import modeling_mist  # noqa: F401  (registers the Auto classes)
from training.cli import main as mist


def train_args(tiny_task, text_encoder_dir, output_dir, *extra):
    questions, features = tiny_task
    return [
        "train",
        "--dataset", str(questions),
        "--features", str(features),
        "--output-dir", str(output_dir),
        "--preset", "tiny",
        "--text-encoder", str(text_encoder_dir),
        "--clip_pretrained", "none",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tiny_task, text_encoder_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("trained")
    assert mist(train_args(tiny_task, text_encoder_dir, output_dir, "--max_steps", "6")) == 0
    return output_dir


def test_output_folder_is_a_complete_model(trained, tiny_task):
    questions = load_from_disk(str(tiny_task[0]))
    model = AutoModel.from_pretrained(str(trained))
    processor = AutoProcessor.from_pretrained(str(trained))
    train_answers = set(questions["train"]["answer"])
    assert set(model.config.id2label.values()) == train_answers
    assert processor.answer_vocabulary == [model.config.id2label[i] for i in range(len(train_answers))]
    assert model.config.max_question_length == processor.max_question_length == 12
    assert type(model).__name__ == "MistForVideoQuestionAnswering"

    card = (trained / "README.md").read_text()
    for expected in ("library_name", "Preset `tiny`", "## Data", "## Hyperparameters", "## Results", "accuracy"):
        assert expected in card
    assert "| learning_rate | 0.001 |" in card and "| max_steps | 6 |" in card
    assert "train: 48 of 48 questions used" in card
    results = json.loads((trained / "all_results.json").read_text())
    assert {"eval_accuracy", "eval_top10_accuracy", "test_accuracy", "train_loss"} <= set(results)
    assert json.loads((trained / "data_report.json").read_text())[0]["kept"] == 48


def test_training_changes_the_weights_and_the_saved_model_reproduces_itself(
    trained, tiny_task, text_encoder_dir, tmp_path
):
    # the same seed and no steps' worth of learning rate gives the initial weights
    assert (
        mist(
            train_args(
                tiny_task,
                text_encoder_dir,
                tmp_path,
                "--max_steps",
                "1",
                "--learning_rate",
                "0",
                "--eval_split",
                "none",
                "--test_split",
                "none",
            )
        )
        == 0
    )
    initial, final = load_file(str(tmp_path / "model.safetensors")), load_file(str(trained / "model.safetensors"))
    moved = max((final[name] - initial[name]).abs().max().item() for name in final if "running" not in name)
    assert moved > 1e-3


def test_evaluate_prints_json_and_writes_predictions(trained, tiny_task, tmp_path, capsys):
    questions, features = tiny_task
    capsys.readouterr()
    code = mist(
        ["evaluate", "--model", str(trained), "--dataset", str(questions), "--features", str(features),
         "--split", "test", "--output-dir", str(tmp_path), "--batch-size", "5"]
    )  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "results_test.json").read_text())
    assert results["task"] == "open-ended" and results["num_questions"] == 16
    assert set(results) >= {
        "accuracy",
        "top10_accuracy",
        "accuracy_by_type",
        "count_by_type",
        "data",
        "predictions_file",
    }
    assert results["count_by_type"] == {"together": 16}
    records = [json.loads(line) for line in (tmp_path / "predictions_test.jsonl").read_text().splitlines()]
    assert len(records) == 16
    assert results["accuracy"] == pytest.approx(np.mean([record["correct"] for record in records]))
    first = records[0]
    assert set(first) >= {"question_id", "question", "answer", "prediction", "correct", "top_answers"}
    assert first["prediction"] == first["top_answers"][0][0] and len(first["top_answers"]) == 5


def test_evaluate_json_on_stdout_matches_the_file(trained, tiny_task, tmp_path, capsys):
    questions, features = tiny_task
    capsys.readouterr()
    assert mist(["evaluate", "--model", str(trained), "--dataset", str(questions), "--features", str(features),
                 "--split", "validation", "--output-dir", str(tmp_path)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    printed = json.loads(out[out.index("{\n") :])
    assert printed == json.loads((tmp_path / "results_validation.json").read_text())


def test_resume_from_checkpoint_gives_the_same_state(tiny_task, text_encoder_dir, tmp_path):
    common = [
        "--max_steps",
        "4",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--eval_split",
        "none",
        "--test_split",
        "none",
    ]
    assert mist(train_args(tiny_task, text_encoder_dir, tmp_path / "straight", *common)) == 0
    checkpoint = tmp_path / "straight" / "checkpoint-2"
    assert (checkpoint / "optimizer.pt").exists()
    resume = ["--resume_from_checkpoint", str(checkpoint)]
    assert mist(train_args(tiny_task, text_encoder_dir, tmp_path / "resumed", *common, *resume)) == 0
    straight = load_file(str(tmp_path / "straight" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-5, atol=1e-6, msg=name)
    state = json.loads((tmp_path / "resumed" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def test_questions_without_features_or_with_new_answers_are_reported(tiny_task, text_encoder_dir, tmp_path):
    questions, features = tiny_task
    splits = load_from_disk(str(questions))
    folder = tmp_path / "questions"
    folder.mkdir()
    for split, name in (("train", "train"), ("validation", "validation")):
        rows = splits[split].remove_columns(["evidence_segments", "evidence_cells"]).to_list()
        rows.append({**rows[0], "question_id": "lost", "video_id": "not_extracted"})
        if name == "validation":
            rows.append({**rows[1], "question_id": "new", "answer": "a unicorn"})
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    assert mist(train_args((folder, features), text_encoder_dir, out, "--max_steps", "2", "--test_split", "none")) == 0
    train_report, validation_report = json.loads((out / "data_report.json").read_text())
    assert (train_report["total"], train_report["kept"], train_report["missing_features"]) == (49, 48, 1)
    assert validation_report["missing_video_examples"] == ["not_extracted"]
    assert (validation_report["answer_not_in_vocabulary"], validation_report["kept_without_label"]) == (1, 1)
    assert json.loads((out / "eval_results.json").read_text())["eval_num_questions"] == 17


def test_multiple_choice_data_trains_and_evaluates(tiny_task, text_encoder_dir, tmp_path):
    questions, features = tiny_task
    splits = load_from_disk(str(questions))
    folder = tmp_path / "questions"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        rows = splits[split].remove_columns(["evidence_segments", "evidence_cells"]).to_list()
        for row in rows:
            others = [word for word in ("cup", "box", "hat", "dog") if word != row["answer"]][:3]
            choices = others + [row["answer"]]
            rng.shuffle(choices)
            row["choices"] = choices
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "mc"
    assert mist(train_args((folder, features), text_encoder_dir, out, "--max_steps", "2", "--eval_split", "none")) == 0
    model = AutoModel.from_pretrained(str(out))
    assert model.config.choice_template == "{choice}"  # the tiny preset has no question pairing
    results = json.loads((out / "test_results.json").read_text())
    assert results["test_num_questions"] == 16 and "test_top10_accuracy" not in results
    assert mist(["evaluate", "--model", str(out), "--dataset", str(folder), "--features", str(features),
                 "--output-dir", str(tmp_path)]) == 0  # fmt: skip
    evaluated = json.loads((tmp_path / "results_test.json").read_text())
    assert evaluated["task"] == "multiple-choice" and evaluated["accuracy"] == pytest.approx(results["test_accuracy"])


def test_bad_config_is_an_error_message(tiny_task, text_encoder_dir, tmp_path, capsys):
    code = mist(train_args(tiny_task, text_encoder_dir, tmp_path, "--config_overrides", "num_selected_patches=9"))
    assert code == 2
    assert "num_selected_patches=9" in capsys.readouterr().err


def test_question_clip_embeddings_are_computed_when_the_data_has_none(
    tiny_task, text_encoder_dir, clip_model_name, tmp_path
):
    questions, features = tiny_task
    splits = load_from_disk(str(questions))
    folder = tmp_path / "questions"
    folder.mkdir()
    for split in ("train", "validation"):
        rows = splits[split].remove_columns(["question_clip_embedding", "evidence_segments", "evidence_cells"])
        rows.to_json(str(folder / f"{split}.jsonl"))
    out = tmp_path / "out"
    # crop_size: the processor checks the CLIP image size even when it only embeds text
    extra = [
        "--clip_model",
        clip_model_name,
        "--config_overrides",
        "crop_size=224",
        "--max_steps",
        "2",
        "--test_split",
        "none",
    ]
    assert mist(train_args((folder, features), text_encoder_dir, out, *extra)) == 0
    assert json.loads((out / "eval_results.json").read_text())["eval_num_questions"] == 16
    processor = AutoProcessor.from_pretrained(str(out))
    assert processor.video_processor.clip_model_name == clip_model_name  # evaluate/predict embed questions the same way
