"""Trainer glue: metrics from ranked candidates, and a Trainer that writes MIST's model card."""

from collections.abc import Callable

import numpy as np
import torch
from transformers import EvalPrediction, Trainer

from .metrics import load_accuracy

OPEN_ENDED_TOP_K = 10  # the paper reports top-1 and top-10 accuracy for open-ended answers


def rank_candidates(top_k: int) -> Callable:
    """`preprocess_logits_for_metrics`: keep each question's `top_k` best candidate indices `[B, k]`.

    Keeps evaluation memory at `[N, k]` instead of every output of every ISTA layer.
    """

    def preprocess(outputs, labels):
        logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs  # [batch, candidates]
        return logits.topk(min(top_k, logits.shape[-1]), dim=-1).indices

    return preprocess


def build_compute_metrics(question_types: list | None = None, top_k: int | None = None) -> Callable:
    """`compute_metrics` for the Trainer over an evaluation set in dataset order.

    Trainer metrics are flat scalars: per-type accuracies become `accuracy_<type>`.
    """
    metric = load_accuracy()

    def compute_metrics(prediction: EvalPrediction) -> dict:
        ranked = np.asarray(prediction.predictions)
        labels = np.asarray(prediction.label_ids)
        types = question_types[: len(labels)] if question_types is not None else None
        results = metric.compute(
            predictions=ranked.reshape(len(labels), -1).tolist(),
            references=labels.tolist(),
            question_types=types,
            top_k=top_k,
        )
        flat = {key: value for key, value in results.items() if not isinstance(value, dict)}
        for kind, accuracy in results.get("accuracy_by_type", {}).items():
            flat[f"accuracy_{kind}"] = accuracy
        return flat

    return compute_metrics


class MistTrainer(Trainer):
    """`Trainer` for `MistForVideoQuestionAnswering`.

    * The model's loss is a per-batch mean over questions; its forward takes `**kwargs` only to pass
      attention options along, so the Trainer must not treat it as normalising by
      `num_items_in_batch` (that would scale the loss by the number of processes and skip the
      gradient-accumulation division).
    * `create_model_card` (called by `push_to_hub`) writes MIST's card instead of the generic one.
    """

    def __init__(self, *args, model_card: Callable[[str], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        self.model_card = model_card

    def create_model_card(self, *args, **kwargs) -> None:
        if self.model_card is None:
            return super().create_model_card(*args, **kwargs)
        if self.is_world_process_zero():
            self.model_card(self.args.output_dir)


@torch.no_grad()
def predict_ranked(model, dataloader, top_k: int, device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Ranked candidates `[N, k]` and their softmax scores for a whole dataloader, answers embedded once.

    For an open-ended vocabulary (the same `[A, La]` answers in every batch) the answer embeddings are
    computed from the first batch and reused.
    """
    model.eval()
    ranked, scores = [], []
    cached_answers = None
    for batch in dataloader:
        batch = {key: value.to(device) for key, value in batch.items()}
        batch.pop("labels", None)
        if batch["answer_input_ids"].dim() == 2:
            if cached_answers is None:
                cached_answers = model.get_answer_embeddings(batch["answer_input_ids"], batch["answer_attention_mask"])
            batch.pop("answer_input_ids"), batch.pop("answer_attention_mask")
            batch["answer_embeds"] = cached_answers
        logits = model(**batch).logits  # [batch, candidates]
        top = logits.softmax(dim=-1).topk(min(top_k, logits.shape[-1]), dim=-1)
        ranked.append(top.indices.cpu().numpy())
        scores.append(top.values.float().cpu().numpy())
    return np.concatenate(ranked), np.concatenate(scores)
