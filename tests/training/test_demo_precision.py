"""bf16 autocast and torch.compile give float32's predictions on the demo model (a model `mist demo` trained
on its synthetic task, real all-MiniLM-L6-v2 text encoders), within the tolerances stated here:

* bf16 autocast (8 bits of mantissa): logits within 5 % of their spread, the same best answer for at least
  95 % of the test questions, test accuracy within 2 points;
* torch.compile (inductor, what the Trainer's `--torch_compile` uses): logits within 1e-4 of their spread and
  the same best answer for every question (a compiled kernel only reorders float32 sums).
"""

import shutil

import pytest
import torch
from datasets import load_from_disk
from torch.utils.data import DataLoader

from training.cli import main as mist
from training.data import MistQuestionDataset, VideoFeatureStore
from training.factory import load_trained, make_collator


@pytest.fixture(scope="module")
def demo_test_batch(tmp_path_factory):
    """The demo's model after a shorter run than the demo's (2,500 training videos, 2 epochs) and its 128 test
    questions."""
    folder = tmp_path_factory.mktemp("demo")
    assert mist(["demo", "--output-dir", str(folder), "--train-videos", "2500", "--test-videos", "64", "--epochs", "2",
                 "--skip-baseline"]) == 0  # fmt: skip
    model, processor = load_trained(str(folder / "model"))
    questions = load_from_disk(str(folder / "data" / "questions"))["test"]
    store = VideoFeatureStore(load_from_disk(str(folder / "data" / "features")))
    dataset = MistQuestionDataset(questions, store, processor.answer_vocabulary, split="test")
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset), collate_fn=make_collator(processor, model.config))))
    labels = batch.pop("labels")
    with torch.no_grad():
        reference = model(**batch).logits
    yield model, batch, labels, reference
    shutil.rmtree(folder, ignore_errors=True)


def accuracy(logits, labels) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


def test_the_demo_model_learned_something_to_compare(demo_test_batch):
    model, batch, labels, reference = demo_test_batch
    assert reference.shape == (128, len(model.config.id2label))
    assert accuracy(reference, labels) > 2 / 15  # above twice chance: the comparisons below are about a real model


def test_bf16_autocast_keeps_the_demo_models_predictions(demo_test_batch):
    model, batch, labels, reference = demo_test_batch
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(**batch).logits.float()
    spread = reference.max() - reference.min()
    assert (low - reference).abs().max() <= 0.05 * spread
    assert (low.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.95
    assert abs(accuracy(low, labels) - accuracy(reference, labels)) <= 0.02


def test_torch_compile_keeps_the_demo_models_predictions(demo_test_batch):
    model, batch, labels, reference = demo_test_batch
    torch._dynamo.reset()
    compiled = torch.compile(model)  # inductor, like TrainingArguments(torch_compile=True)
    with torch.no_grad():
        logits = compiled(**batch).logits
    torch._dynamo.reset()
    assert (logits - reference).abs().max() <= 1e-4 * (reference.max() - reference.min())
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))
