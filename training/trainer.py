"""Trainer glue: candidate ranking, metrics from ranked candidates, and a Trainer that knows MIST."""

from collections.abc import Callable

import numpy as np
import torch
from transformers import EvalPrediction, Trainer

from modeling_mist.answer_cache_mist import AnswerCache

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
        self._answer_cache = AnswerCache()  # the shared vocabulary's embeddings, per global step
        self._frozen_answer_cache = AnswerCache()  # the frozen answer encoder's pooled output of the vocabulary

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
        unwrapped = self.accelerator.unwrap_model(model)
        encoder = unwrapped.answer_encoder

        def encode() -> torch.Tensor:
            was_training = encoder.training
            encoder.eval()  # a fixed feature extractor: no dropout
            try:
                on_device = self._prepare_inputs({"ids": answer_ids, "mask": answer_mask})
                with self.autocast_smart_context_manager():
                    return unwrapped.get_answer_features(on_device["ids"], on_device["mask"])
            finally:
                encoder.train(was_training)

        return self._frozen_answer_cache.get(AnswerCache.key((answer_ids, answer_mask), encoder=encoder), encode)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        answer_ids = inputs.get("answer_input_ids")
        if answer_ids is not None and answer_ids.dim() == 2:  # one vocabulary shared by the batch
            inputs = self._prepare_inputs(inputs)
            answer_ids, answer_mask = inputs.pop("answer_input_ids"), inputs.pop("answer_attention_mask", None)
            inputs["answer_embeds"] = self._shared_answer_embeddings(model, answer_ids, answer_mask)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    @torch.no_grad()
    def _shared_answer_embeddings(self, model, answer_ids: torch.Tensor, answer_mask: torch.Tensor | None):
        """The vocabulary's embeddings, computed once per global step: the weights change only when it does. Keyed
        by the ids alone (the padding mask follows from them), as cheap per batch as one comparison."""
        unwrapped = self.accelerator.unwrap_model(model)

        def embed() -> torch.Tensor:
            with self.autocast_smart_context_manager():
                return unwrapped.get_answer_embeddings(answer_ids, answer_mask)

        key = AnswerCache.key(answer_ids, encoder=unwrapped, version=self.state.global_step)
        return self._answer_cache.get(key, embed)

    def create_model_card(self, *args, **kwargs) -> None:
        if self.model_card is None:
            return super().create_model_card(*args, **kwargs)
        if self.is_world_process_zero():
            self.model_card(self.args.output_dir)
