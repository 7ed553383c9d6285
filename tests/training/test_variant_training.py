"""`mist train --preset nextqa` / `--preset star`: the reference's NExT-QA and STAR models train and evaluate
through the Trainer on small multiple-choice data (STAR with one feature row per question's clip)."""

import json

import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from transformers import AutoModel, BertTokenizer, DistilBertConfig, DistilBertModel

import modeling_mist  # noqa: F401  (registers the Auto classes)
from training.cli import main as mist

# Tiny sizes for the features of the tiny task (8 frames, 2 x 2 grid, 16-d CLIP-like features).
NEXTQA_OVERRIDES = (
    "hidden_size=16,num_attention_heads=2,intermediate_size=32,box_hidden_size=8,num_segments=8,num_hidden_layers=1,"
    "num_temporal_layers=1,num_selected_patches=4,max_question_length=12,max_answer_length=20,dropout=0.0,"
    "attention_dropout=0.0"
)
STAR_OVERRIDES = (
    "hidden_size=32,num_attention_heads=4,intermediate_size=32,box_hidden_size=8,num_segments=4,num_hidden_layers=1,"
    "max_question_length=12,max_answer_length=20,dropout=0.0,attention_dropout=0.0"
)
SHORT_RUN = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
             "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
             "--use_cpu", "--dataloader_num_workers", "0", "--report_to", "none", "--clip_pretrained", "none"]  # fmt: skip


def multiple_choice_questions(questions_folder, folder, per_question_features: bool):
    """The tiny task as 4-way multiple choice; STAR-style rows also name their own feature row."""
    splits = load_from_disk(str(questions_folder))
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        rows = splits[split].remove_columns(["evidence_segments", "evidence_cells"]).to_list()
        for row in rows:
            choices = [word for word in ("cup", "box", "hat", "dog") if word != row["answer"]][:3] + [row["answer"]]
            rng.shuffle(choices)
            row["choices"] = choices
            if per_question_features:
                row["feature_id"] = row["question_id"]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def per_question_features(features_folder, questions_folder, output):
    """The features again, one row per question id (each STAR question has its own clip)."""
    features = load_from_disk(str(features_folder))
    row_of = {video_id: index for index, video_id in enumerate(features["video_id"])}
    rows = []
    for split in ("train", "test"):
        for line in (questions_folder / f"{split}.jsonl").read_text().splitlines():
            question = json.loads(line)
            rows.append({**features[row_of[question["video_id"]]], "video_id": question["feature_id"]})
    Dataset.from_list(rows, features=features.features).save_to_disk(str(output))
    return output


@pytest.fixture(scope="module")
def tiny_distilbert(text_encoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-distilbert")
    tokenizer = BertTokenizer.from_pretrained(str(text_encoder_dir))
    tokenizer.save_pretrained(str(folder))
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=4, hidden_dim=37, max_position_embeddings=64
    )
    DistilBertModel(config).save_pretrained(str(folder))
    return folder


def test_nextqa_preset_trains_and_evaluates(tiny_task, text_encoder_dir, tmp_path):
    questions = multiple_choice_questions(tiny_task[0], tmp_path / "questions", per_question_features=False)
    out = tmp_path / "nextqa"
    code = mist(["train", "--preset", "nextqa", "--dataset", str(questions), "--features", str(tiny_task[1]),
                 "--output-dir", str(out), "--text-encoder", str(text_encoder_dir),
                 "--config_overrides", NEXTQA_OVERRIDES, *SHORT_RUN])  # fmt: skip
    assert code == 0
    model = AutoModel.from_pretrained(str(out))
    config = model.config
    assert (config.task, config.choice_template) == ("multiple-choice", "{question} {sep} {choice}")
    assert config.frame_as_patch_candidate and not config.question_tokens_in_sequence
    assert (config.num_temporal_layers, config.segment_normalization, config.fusion_pooling) == (1, "time", "mean")
    assert (config.answer_pooling, config.gumbel_temperature, config.freeze_position_embeddings) == (
        "mean_unmasked",
        100.0,
        True,
    )
    assert model.mist.question_encoder is None
    results = json.loads((out / "test_results.json").read_text())
    assert results["test_num_questions"] == 16 and 0.0 <= results["test_accuracy"] <= 1.0
    card = (out / "README.md").read_text()
    assert "nextqa" in card


def test_star_preset_reads_one_feature_row_per_question(tiny_task, tiny_distilbert, tmp_path):
    questions = multiple_choice_questions(tiny_task[0], tmp_path / "questions", per_question_features=True)
    features = per_question_features(tiny_task[1], questions, tmp_path / "features")
    out = tmp_path / "star"
    code = mist(["train", "--preset", "star", "--dataset", str(questions), "--features", str(features),
                 "--output-dir", str(out), "--text-encoder", str(tiny_distilbert),
                 "--config_overrides", STAR_OVERRIDES, *SHORT_RUN])  # fmt: skip
    assert code == 0
    model = AutoModel.from_pretrained(str(out))
    assert model.config.text_config.model_type == "distilbert" and not model.config.use_patch_selection
    report = json.loads((out / "data_report.json").read_text())
    assert report[0]["kept"] == report[0]["total"] == 48  # every question found its own feature row
    results = json.loads((out / "test_results.json").read_text())
    assert results["test_num_questions"] == 16
