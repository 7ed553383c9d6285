"""benchmarks/benchmark_vs_original.py: the driver's bookkeeping with fake workers, and one real project worker.

The original side runs only when MIST_ORIGINAL_DIR names a checkout of github showlab/mist.
No timing is asserted: the numbers depend on the machine.
"""

import importlib.util
import json
import os
import shlex
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO_ROOT, run_python

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "benchmark_vs_original.py"
TINY_WORK = shlex.split("--batch 1 --steps 1 --warmup 0 --threads 1 --answers 3 --question-length 4 --answer-length 3")
PHASES = ("train", "eval_cached", "eval_reencode")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_vs_original", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_checkout(tmp_path, bench, monkeypatch):
    for relative in bench.ORIGINAL_FILES:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("")
    monkeypatch.setattr(bench, "_importable", lambda module: True)
    return tmp_path


def fake_run(side, rates, rss):
    """A worker's result: `rates` questions/s per phase, half of that per CPU second (two busy threads)."""
    return {
        "side": side,
        "train_peak_rss_mib": rss,
        **{f"{phase}_questions_per_s": rate for phase, rate in zip(PHASES, rates)},
        **{f"{phase}_questions_per_cpu_s": rate / 2 for phase, rate in zip(PHASES, rates)},
    }


def test_a_directory_that_is_not_a_checkout_is_named_with_its_missing_file(fake_checkout, bench):
    (fake_checkout / "model" / "mist.py").unlink()
    with pytest.raises(SystemExit, match=r"not a checkout of github showlab/mist: model/mist.py is missing"):
        bench.parse_args(["--original", str(fake_checkout)])
    with pytest.raises(SystemExit, match="no such directory"):
        bench.parse_args(["--original", str(fake_checkout / "absent")])
    with pytest.raises(SystemExit):
        bench.parse_args([])  # only the project worker runs without a checkout
    assert bench.parse_args(["--worker", "project"]).original is None


def test_medians_and_ratios_are_project_over_original(bench):
    runs = [
        fake_run("original", (2.0, 10.0, 5.0), 1000),
        fake_run("project", (3.0, 20.0, 5.0), 900),
        fake_run("project", (4.0, 30.0, 6.0), 800),
        fake_run("original", (4.0, 10.0, 3.0), 1200),
        fake_run("original", (3.0, 12.0, 4.0), 1100),
        fake_run("project", (5.0, 25.0, 8.0), 850),
    ]
    summary = bench.summarize(runs)
    median_run = fake_run("original", (3.0, 10.0, 4.0), 1100)
    assert summary["medians"]["original"] == {key: value for key, value in median_run.items() if key != "side"}
    expected = {"train": 4 / 3, "eval_cached": 2.5, "eval_reencode": 1.5}
    assert summary["ratios"] == pytest.approx(
        {
            "train_peak_rss_mib": 850 / 1100,
            **{f"{phase}_questions_per_s": ratio for phase, ratio in expected.items()},
            **{f"{phase}_questions_per_cpu_s": ratio for phase, ratio in expected.items()},
        }
    )


def test_driver_alternates_sides_in_fresh_workers_and_writes_the_report(
    fake_checkout, bench, monkeypatch, tmp_path, capsys
):
    calls = []

    def run_worker(side, args):
        calls.append(side)
        if side == "original":
            return fake_run(side, (2.0, 8.0, 4.0), 2048)
        return fake_run(side, (3.0, 16.0, 5.0), 1024)

    monkeypatch.setattr(bench, "run_worker", run_worker)
    report_path = tmp_path / "report.json"
    bench.main(["--original", str(fake_checkout), "--repeats", "3", "--json", str(report_path)])
    assert calls == ["original", "project", "project", "original", "original", "project"]
    report = json.loads(report_path.read_text())
    assert report["ratios"]["train_questions_per_s"] == 1.5 and report["ratios"]["train_questions_per_cpu_s"] == 1.5
    assert report["ratios"]["eval_cached_questions_per_s"] == 2.0
    assert report["ratios"]["eval_reencode_questions_per_s"] == 1.25 and report["ratios"]["train_peak_rss_mib"] == 0.5
    assert report["work"]["batch"] == 32 and report["work"]["answers"] == 171 and len(report["runs"]) == 6
    assert all(run["load_average_after"] >= 0 for run in report["runs"])
    assert {"cpu", "cores", "torch"} <= set(report["machine"])
    table = capsys.readouterr().out
    assert "training step (q/s)" in table and "1.50" in table and "machine:" in table


def run_real_worker(side, *extra):
    completed = run_python([str(SCRIPT), "--worker", side, *TINY_WORK, *extra], cwd=REPO_ROOT, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("BENCHMARK-RESULT "))
    result = json.loads(line.removeprefix("BENCHMARK-RESULT "))
    assert result["side"] == side and result["threads"] == 1
    for phase in PHASES:
        assert result[f"{phase}_questions_per_s"] > 0 and result[f"{phase}_questions_per_cpu_s"] > 0, phase
    assert result["train_peak_rss_mib"] > 0 and result["build_s"] > 0
    assert result["eval_cached_gflop_per_question"] > 0 and result["matmul_peak_gflops"] > 0
    return result


def test_project_worker_prints_positive_measurements():
    result = run_real_worker("project")
    assert result["optimized_parameters_m"] == result["parameters_m"] > 0  # Adam over the whole model


@pytest.mark.skipif(not os.environ.get("MIST_ORIGINAL_DIR"), reason="MIST_ORIGINAL_DIR names no showlab/mist checkout")
def test_original_worker_prints_positive_measurements():
    result = run_real_worker("original", "--original", os.environ["MIST_ORIGINAL_DIR"])
    # CLIP is left out of Adam, as in the original
    assert 0 < result["optimized_parameters_m"] < result["parameters_m"]


def test_lean_mode_reaches_the_project_worker_only(bench, fake_checkout):
    args = bench.parse_args(["--original", str(fake_checkout), "--lean", "--dtype", "bfloat16", *TINY_WORK])
    project, original = bench.worker_command("project", args), bench.worker_command("original", args)
    assert "--lean" in project and "--lean" not in original
    assert project[project.index("--dtype") + 1] == original[original.index("--dtype") + 1] == "bfloat16"


def test_as_shipped_runs_the_original_in_float32_with_the_whole_clip(bench, fake_checkout):
    args = bench.parse_args(["--original", str(fake_checkout), "--as-shipped", "--dtype", "bfloat16", *TINY_WORK])
    assert args.clip_layers == bench.CLIP_TEXT_LAYERS == 12
    assert bench.side_dtype("original", args) == "float32" and bench.side_dtype("project", args) == "bfloat16"
    for side in bench.SIDES:
        command = bench.worker_command(side, args)
        assert "--as-shipped" in command and command[command.index("--clip-layers") + 1] == "12"
    plain = bench.parse_args(["--original", str(fake_checkout), "--dtype", "bfloat16", *TINY_WORK])
    assert plain.clip_layers == 1 and bench.side_dtype("original", plain) == "bfloat16"


def test_summary_carries_the_projects_one_time_clip_cost(bench):
    runs = [
        fake_run("original", (2.0, 10.0, 5.0), 1000),
        {**fake_run("project", (3.0, 20.0, 5.0), 900), "clip_question_ms": 30.0},
        {**fake_run("project", (3.0, 20.0, 5.0), 900), "clip_question_ms": 50.0},
    ]
    assert bench.summarize(runs)["clip_question_ms"] == 40.0
    assert "clip_question_ms" not in bench.summarize(runs[:1] + [fake_run("project", (3.0, 20.0, 5.0), 900)])


def test_project_worker_as_shipped_steps_fused_adam_and_times_the_clip_question_embedding():
    result = run_real_worker("project", "--as-shipped")
    assert result["fused_adam"] is True and result["clip_question_ms"] > 0 and result["dtype"] == "float32"


def test_flops_are_counted_per_question_and_the_matmul_peak_is_a_rate(bench):
    left, right = torch.ones(4, 8), torch.ones(8, 16)
    assert bench.flops_per_question(lambda: left @ right, batch=4) == 2 * 4 * 8 * 16 / 4
    for dtype in ("float32", "bfloat16"):
        assert bench.matmul_peak_gflops(dtype, size=64, repeats=1) > 0


def test_the_evaluation_ceiling_is_the_project_at_its_peak_over_the_original(bench, fake_checkout, capsys):
    def run(side, eval_rate, gflop, peak):
        return {
            **fake_run(side, (1.0, eval_rate, 1.0), 1000),
            "eval_cached_gflop_per_question": gflop,
            "matmul_peak_gflops": peak,
        }

    runs = [run("original", 10.0, 12.0, 150.0), run("project", 40.0, 6.0, 400.0), run("project", 44.0, 6.0, 420.0)]
    summary = bench.summarize(runs)
    ceiling = summary["eval_ceiling"]
    assert ceiling["original_achieved_gflops"] == 120.0 and ceiling["original_share_of_peak"] == 0.8
    assert ceiling["project_achieved_gflops"] == pytest.approx(6.0 * 42.0)
    assert ceiling["project_share_of_peak"] == pytest.approx(6.0 * 42.0 / 410.0)
    assert ceiling["project_best_questions_per_s"] == pytest.approx(410.0 / 6.0)
    assert ceiling["best_ratio"] == pytest.approx(410.0 / 6.0 / 10.0)
    args = bench.parse_args(["--original", str(fake_checkout), "--as-shipped", "--dtype", "bfloat16"])
    bench.print_ceiling(summary, args)
    printed = capsys.readouterr().out
    assert "original: 12.00 GFLOP per question at 120 GFLOP/s, 80% of the 150 GFLOP/s float32 peak" in printed
    assert "the project would evaluate 68.3 q/s, 6.83x the original" in printed
