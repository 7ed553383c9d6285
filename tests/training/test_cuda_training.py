"""`mist train` and `mist evaluate` through the Trainer on a real CUDA device (skipped without one): bf16
training on the GPU, and the GPU's evaluation giving the CPU's predictions for the same saved model."""

import json

import pytest
import torch

from tests.training.test_train_evaluate import train_args
from training.cli import main as mist

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def evaluate(model_dir, tiny_task, output_dir, device: str) -> list[dict]:
    questions, features = tiny_task
    code = mist(
        ["evaluate", "--model", str(model_dir), "--dataset", str(questions), "--features", str(features),
         "--split", "test", "--output-dir", str(output_dir), "--device", device, "--no-progress"]
    )  # fmt: skip
    assert code == 0
    return [json.loads(line) for line in (output_dir / "predictions_test.jsonl").read_text().splitlines()]


def test_bf16_training_on_cuda_then_cuda_evaluation_matches_cpu(tiny_task, text_encoder_dir, tmp_path):
    model_dir = tmp_path / "model"
    args = train_args(
        tiny_task, text_encoder_dir, model_dir, "--max_steps", "6", "--use_cpu", "false", "--bf16", "true"
    )
    assert mist(args) == 0
    results = json.loads((model_dir / "all_results.json").read_text())
    assert torch.isfinite(torch.tensor(results["train_loss"]))
    on_gpu = evaluate(model_dir, tiny_task, tmp_path / "gpu", "cuda")
    on_cpu = evaluate(model_dir, tiny_task, tmp_path / "cpu", "cpu")
    assert len(on_gpu) == len(on_cpu) == 16
    assert [r["prediction"] for r in on_gpu] == [r["prediction"] for r in on_cpu]
    for gpu, cpu in zip(on_gpu, on_cpu):
        assert gpu["top_answers"][0][1] == pytest.approx(cpu["top_answers"][0][1], abs=1e-3)
