"""The accuracy metric loads offline through `evaluate.load` and breaks accuracy down by type."""

import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from training.metrics import load_accuracy
from training.trainer import build_compute_metrics, rank_candidates


@pytest.fixture(scope="module")
def metric():
    return load_accuracy()


def test_accuracy_top_k_and_types(metric):
    results = metric.compute(
        predictions=[[2, 0, 1], [1, 2, 0], [0, 1, 2], [1, 0, 2]],
        references=[2, 0, -100, 1],  # -100: an answer outside the vocabulary, always wrong
        question_types=[["exists", "obj-rel"], "obj-rel", "exists", None],
        top_k=2,
    )
    assert results == {
        "accuracy": 0.5,
        "top2_accuracy": 0.5,
        "num_questions": 4,
        "accuracy_by_type": {"exists": 0.5, "obj-rel": 0.5, "unknown": 1.0},
        "count_by_type": {"exists": 2, "obj-rel": 2, "unknown": 1},
    }


def test_without_types_or_top_k(metric):
    assert metric.compute(predictions=[[1], [0]], references=[1, 1]) == {"accuracy": 0.5, "num_questions": 2}
    with pytest.raises(ValueError, match="question_types"):
        metric.compute(predictions=[[1]], references=[1], question_types=["a", "b"])


def test_trainer_metrics_are_flat_and_ranked_from_logits():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3]])
    ranked = rank_candidates(2)((logits, torch.zeros(2, 4)), None)
    assert ranked.tolist() == [[1, 0], [0, 2]]
    compute = build_compute_metrics(["why", "how"], top_k=2)
    results = compute(EvalPrediction(predictions=ranked.numpy(), label_ids=np.array([1, 2])))
    assert results == {
        "accuracy": 0.5,
        "top2_accuracy": 1.0,
        "num_questions": 2,
        "accuracy_how": 0.0,
        "accuracy_why": 1.0,
    }
