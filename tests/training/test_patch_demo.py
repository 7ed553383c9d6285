"""`mist demo --task patches` end to end at a tiny scale: every twin trains and lands in the table."""

import json

import pytest

from training.cli import main as mist
from training.demo.patch_runner import PATCH_TASK_SELECTION

pytestmark = pytest.mark.slow


def test_patch_demo_prints_the_twins_table_and_curves(tmp_path, capsys):
    code = mist(["demo", "--task", "patches", "--output-dir", str(tmp_path), "--scale", "0.01", "--epochs", "2",
                 "--curve-points", "2"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    for label in ("MIST", "question only", "summaries only", "all patches of all frames", "oracle selection"):
        assert label in printed
    assert "chance (a uniform guess among the answers of the question's kind): 16.7%" in printed
    assert f"MIST overrides of the demo preset: {PATCH_TASK_SELECTION}\n" in printed
    results = json.loads((tmp_path / "patch_results.json").read_text())["results"]
    assert [result["twin"] for result in results] == [
        "mist",
        "question_only",
        "summaries_only",
        "all_patches",
        "oracle",
    ]
    assert results[0]["config_overrides"] == PATCH_TASK_SELECTION  # every model trains with the chosen settings
    assert results[3]["config_overrides"].startswith(PATCH_TASK_SELECTION + ",use_patch_selection=False")
    assert all(result["test"]["test_num_questions"] == 4 for result in results)  # 2 test videos, 2 questions each
    oracle = results[-1]["selection"]
    assert [layer["top_segment_is_evidence"] for layer in oracle] == [1.0, 1.0]  # handed the evidence
    assert [layer["answer_cell_kept_in_its_frames"] for layer in oracle] == [1.0, 1.0]
    assert "selection" in results[0] and "selection" not in results[1]
    assert len(results[0]["curve"]) == 2 and len(results[0]["selection_curve"]) == 2
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_patch_demo_refuses_a_bad_task_setting(tmp_path, capsys):
    code = mist(
        ["demo", "--task", "patches", "--output-dir", str(tmp_path), "--task-overrides", "question_alignment=2"]
    )
    assert code == 2
    assert "question_alignment=2: expected a cosine in (0, 1]" in capsys.readouterr().err
