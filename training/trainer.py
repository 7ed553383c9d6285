"""Trainer glue: candidate ranking, metrics from ranked candidates, and a Trainer that knows MIST."""

from collections.abc import Callable

import numpy as np
import torch
from transformers import EvalPrediction, Trainer

from .metrics import load_accuracy

OPEN_ENDED_TOP_K = 10  # the paper reports top-1 and top-10 accuracy for open-ended answers


def top_candidates(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each question's `top_k` best candidates, best first: (indices `[B, k]`, softmax probabilities `[B, k]`)."""
    best = logits.float().softmax(dim=-1).topk(min(top_k, logits.shape[-1]), dim=-1)
    return best.indices, best.values


def rank_candidates(top_k: int, with_scores: bool = False) -> Callable:
    """`preprocess_logits_for_metrics`: keep each question's `top_k` best candidate indices `[B, k]`
    (and, `with_scores`, their probabilities `[B, k]`).

    Keeps evaluation memory at `[N, k]` instead of every output of every ISTA layer.
    """

    def preprocess(outputs, labels):
        logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs  # [batch, candidates]
        indices, scores = top_candidates(logits, top_k)
        return (indices, scores) if with_scores else indices

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

    * Evaluation embeds a shared open-ended vocabulary once per evaluation, not once per batch: the
      answers and the weights do not change within one evaluation.
    * Training with a frozen answer encoder (`freeze_text_encoders`, `--freeze-text-encoders`) runs it once
      over a shared open-ended vocabulary, not at every step: its pooled output cannot change, so it is
      cached (computed without dropout, as a fixed feature extractor) and passed as `answer_features`; the
      answer projection after it still trains. An answer encoder that trains is run every step, as before.
    * `create_model_card` (called by `push_to_hub`) writes MIST's card instead of the generic one.
    """

    def __init__(self, *args, model_card: Callable[[str], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_card = model_card
        self._answer_cache = None  # (global step, answer ids, answer embeddings)
        self._frozen_answer_cache = None  # (answer ids, attention mask, pooled answer-encoder output)

    def training_step(self, model, inputs, num_items_in_batch=None):
        answer_ids = inputs.get("answer_input_ids")
        if answer_ids is not None and answer_ids.dim() == 2:  # one vocabulary shared by the batch
            encoder = self.accelerator.unwrap_model(model).answer_encoder
            if not any(parameter.requires_grad for parameter in encoder.parameters()):
                inputs = dict(inputs)
                ids, mask = inputs.pop("answer_input_ids"), inputs.pop("answer_attention_mask", None)
                inputs["answer_features"] = self._frozen_answer_features(model, ids, mask)
        return super().training_step(model, inputs, num_items_in_batch)

    @torch.no_grad()
    def _frozen_answer_features(self, model, answer_ids: torch.Tensor, answer_mask: torch.Tensor | None):
        """The frozen answer encoder's pooled output for this vocabulary, computed once. The ids are compared
        where the collator made them (the host), before they are moved to the device."""
        if answer_mask is None:
            answer_mask = torch.ones_like(answer_ids)
        cached = self._frozen_answer_cache
        if cached is None or not (torch.equal(cached[0], answer_ids) and torch.equal(cached[1], answer_mask)):
            unwrapped = self.accelerator.unwrap_model(model)
            encoder = unwrapped.answer_encoder
            was_training = encoder.training
            encoder.eval()  # a fixed feature extractor: no dropout
            try:
                on_device = self._prepare_inputs({"ids": answer_ids, "mask": answer_mask})
                with self.autocast_smart_context_manager():
                    features = unwrapped.get_answer_features(on_device["ids"], on_device["mask"])
            finally:
                encoder.train(was_training)
            cached = self._frozen_answer_cache = (answer_ids.clone(), answer_mask.clone(), features)
        return cached[2]

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        answer_ids = inputs.get("answer_input_ids")
        if answer_ids is not None and answer_ids.dim() == 2:  # one vocabulary shared by the batch
            inputs = self._prepare_inputs(inputs)
            answer_ids, answer_mask = inputs.pop("answer_input_ids"), inputs.pop("answer_attention_mask", None)
            inputs["answer_embeds"] = self._shared_answer_embeddings(model, answer_ids, answer_mask)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    @torch.no_grad()
    def _shared_answer_embeddings(self, model, answer_ids: torch.Tensor, answer_mask: torch.Tensor | None):
        cached = self._answer_cache
        step = self.state.global_step
        if cached is None or cached[0] != step or not torch.equal(cached[1], answer_ids):
            with self.autocast_smart_context_manager():
                embeddings = self.accelerator.unwrap_model(model).get_answer_embeddings(answer_ids, answer_mask)
            cached = self._answer_cache = (step, answer_ids, embeddings)
        return cached[2]

    def create_model_card(self, *args, **kwargs) -> None:
        if self.model_card is None:
            return super().create_model_card(*args, **kwargs)
        if self.is_world_process_zero():
            self.model_card(self.args.output_dir)
