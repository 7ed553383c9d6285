"""The feature-extraction benchmark: its FLOP-limit report, and its model-only variants on a tiny run."""

import importlib.util
import re
from pathlib import Path

import torch

from tests.helpers import REPO_ROOT, run_python

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "benchmark_extraction.py"


def test_extraction_benchmark_reports_the_share_of_the_flop_limit():
    spec = importlib.util.spec_from_file_location("benchmark_extraction", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # 989 TFLOP/s at 8.73 GFLOP per image: 113,288 images/s; 56,644 of them is half of it
    assert (
        module.flop_limit_report(989e3 / 8.73 / 2, 989, 8.73)
        == "FLOP limit 113,288 images/s; reached 50.0% (2.0x from it)"
    )


class EveryToken(torch.nn.Module):
    """A block run on every token even where the tower asks for the class token alone."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, hidden_states, class_token_only=False):
        return self.block(hidden_states)


def test_vit_b32_flops_are_what_torchs_counter_counts_on_the_whole_tower():
    """The formula against torch's FLOP counter over every block of the inference tower on every token."""
    import open_clip
    from torch.utils.flop_counter import FlopCounterMode

    from modeling_mist.clip_runtime_mist import InferenceImageTower

    spec = importlib.util.spec_from_file_location("benchmark_extraction", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tower = InferenceImageTower(open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).visual)
    tower.blocks[-1] = EveryToken(tower.blocks[-1])
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        tower(torch.zeros(1, 3, 224, 224))
    assert abs(module.image_tower_gflops("ViT-B-32-quickgelu") - counter.get_total_flops() / 1e9) < 1e-3
    assert 8.8 < module.image_tower_gflops("ViT-B-32-quickgelu") < 8.83


def test_half_precision_clip_tower_gives_the_autocast_features():
    """On the CPU the half-precision variant is bfloat16 weights; its features must point where float32's do."""
    tiny = "--device cpu --threads 1 --videos 1 --video-frames 8 --width 64 --height 48 --num-frames 2 --grid-size 1"
    command = [str(SCRIPT), *tiny.split(), "--clip-batch-size", "4", "--clip-dtype", "float32"]
    completed = run_python([*command, "--methods", "model-only", "model-only-half"], cwd=REPO_ROOT, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("model-only") and "against" not in line}
    assert set(rows) == {"model-only", "model-only-half"}
    assert all(float(row[3]) > 0 for row in rows.values())  # images/s
    cosine = re.search(r"model-only-half against model-only: smallest cosine similarity ([0-9.]+)", completed.stdout)
    assert cosine is not None, completed.stdout
    assert 0.99 < float(cosine.group(1)) <= 1.0001


def test_stage_benchmark_times_every_stage_and_reports_clips_share():
    script = SCRIPT.parent / "benchmark_extraction_stages.py"
    tiny = "--device cpu --threads 1 --videos 1 --video-frames 8 --width 64 --height 48 --num-frames 2"
    completed = run_python([str(script), *tiny.split()], cwd=REPO_ROOT, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "1 videos of 8 frames 64x48, 34 CLIP images" in completed.stdout
    rows = dict(re.findall(r"^(decode|transfer|preprocess|CLIP) +([0-9.]+) +[0-9.]+$", completed.stdout, re.M))
    assert set(rows) == {"decode", "transfer", "preprocess", "CLIP"}, completed.stdout
    assert float(rows["CLIP"]) > 0 and float(rows["decode"]) > 0
    share = re.search(r"CLIP at [0-9,]+ GFLOP/s \(8\.82 GFLOP per image\): ([0-9.]+)% of ", completed.stdout)
    assert share is not None and 0 < float(share.group(1)) < 150, completed.stdout
