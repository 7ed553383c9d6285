"""The feature-extraction benchmark: its FLOP-limit report, and its model-only variants on a tiny run."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "benchmark_extraction.py"


def test_extraction_benchmark_reports_the_share_of_the_flop_limit():
    spec = importlib.util.spec_from_file_location("benchmark_extraction", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # 989 TFLOP/s at 4.4 GFLOP per image: 224,773 images/s; 112,386 of them is half of it
    assert (
        module.flop_limit_report(989e3 / 4.4 / 2, 989) == "FLOP limit 224,773 images/s; reached 50.0% (2.0x from it)"
    )


def test_half_precision_clip_tower_gives_the_autocast_features():
    """On the CPU the half-precision variant is bfloat16 weights; its features must point where float32's do."""
    tiny = "--device cpu --threads 1 --videos 1 --video-frames 8 --width 64 --height 48 --num-frames 2 --grid-size 1"
    command = [sys.executable, str(SCRIPT), *tiny.split(), "--clip-batch-size", "4"]
    completed = subprocess.run(
        [*command, "--methods", "model-only", "model-only-half"], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("model-only") and "against" not in line}
    assert set(rows) == {"model-only", "model-only-half"}
    assert all(float(row[3]) > 0 for row in rows.values())  # images/s
    cosine = re.search(r"model-only-half against model-only: smallest cosine similarity ([0-9.]+)", completed.stdout)
    assert cosine is not None, completed.stdout
    assert 0.99 < float(cosine.group(1)) <= 1.0001
