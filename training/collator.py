"""Batches questions with their video features into `MistForVideoQuestionAnswering` inputs."""

import copy
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from modeling_mist import MistConfig, MistProcessor


@dataclass
class MistDataCollator:
    """Turns examples of `MistQuestionDataset` (or plain dicts of the same keys) into a model batch.

    Example keys: `question` (str), `frame_features` `[F, D]`, `patch_features` `[F, P, D]`,
    `question_clip_embedding` `[D]`, `labels` (int, optional), `choices` (list[str], multiple choice),
    `question_id` (optional, named in errors).

    Batch keys: `frame_features [B, F, D]`, `patch_features [B, F, P, D]` (`feature_dtype`; None keeps the
    stored float16 until the model casts them on its device: half the bytes to pin and to copy),
    `input_ids`/`attention_mask [B, L]` (L <= the processor's max_question_length),
    `question_clip_embeds [B, D]`, `answer_input_ids`/`answer_attention_mask` `[A, La]` (the
    open-ended vocabulary; the processor tokenises it once and caches it) or `[B, C, La]` (each
    question's choices, written with the task's `choice_template`), and `labels [B]` when examples carry them.

    The task definition is the model's `config` (`MistConfig`): open-ended over `config.answer_vocabulary`,
    or multiple choice over each example's `choices` written with `config.choice_template`. Without a
    config, examples bring their choices, written with the processor's template (the copy it was built
    with, `MistProcessor.from_mist_config`). `answer_vocabulary` and `choice_template` are deprecated
    (a `FutureWarning`): they set the task again beside the config.

    `zero_video=True` replaces both feature tensors by zeros: the question-only baseline.
    """

    processor: MistProcessor
    answer_vocabulary: list[str] | None = None  # deprecated: the config's
    choice_template: str | None = None  # deprecated: the config's
    zero_video: bool = False
    feature_dtype: torch.dtype | None = torch.float32
    config: MistConfig | None = None  # the task definition (`task`, `id2label`, `choice_template`)
    answers: list[str] | None = field(init=False, default=None)  # the open-ended candidates; None: choices

    def __post_init__(self):
        given = [name for name in ("answer_vocabulary", "choice_template") if getattr(self, name) is not None]
        if given and self.config is not None:
            raise ValueError(
                f"MistDataCollator got config and {' and '.join(given)}: the task definition is the config's; "
                f"leave {' and '.join(given)} out"
            )
        if given:
            warnings.warn(
                f"MistDataCollator({', '.join(f'{name}=...' for name in given)}) is deprecated and will be removed: "
                "the task definition is the model config's; pass config=model.config",
                FutureWarning,
                stacklevel=3,
            )
        # None: multiple choice, each example's choices.
        self.answers = self.config.answer_vocabulary if self.config is not None else self.answer_vocabulary
        template = self.config.choice_template if self.config is not None else self.choice_template
        if template is not None and template != self.processor.choice_template:
            # A shallow copy shares the tokenizer and CLIP; only the way choices are written differs.
            self.processor = copy.copy(self.processor)
            self.processor.choice_template = template

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        stacked = getattr(examples, "stacked", {})  # an `ExampleBatch` arrives with its arrays stacked
        batch = {
            "frame_features": self._features(examples, stacked, "frame_features", self.feature_dtype),
            "patch_features": self._features(examples, stacked, "patch_features", self.feature_dtype),
            "question_clip_embeds": self._features(examples, stacked, "question_clip_embedding", torch.float32),
        }
        if self.zero_video:
            batch["frame_features"] = torch.zeros_like(batch["frame_features"])
            batch["patch_features"] = torch.zeros_like(batch["patch_features"])
        questions = [example["question"] for example in examples]
        if self.answers is not None:
            text_inputs = self.processor(text=questions, answers=self.answers)
        else:
            text_inputs = self.processor(text=questions, choices=self._choices(examples))
        for key in ("input_ids", "attention_mask", "answer_input_ids", "answer_attention_mask"):
            batch[key] = text_inputs[key]
        if all("labels" in example for example in examples):
            batch["labels"] = torch.tensor([int(example["labels"]) for example in examples], dtype=torch.long)
        return batch

    @staticmethod
    def _features(examples: list[dict], stacked: dict, key: str, dtype: torch.dtype | None) -> torch.Tensor:
        if stacked.get(key) is not None:
            array = stacked[key]
            tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
            return tensor if dtype is None else tensor.to(dtype)
        missing = [index for index, example in enumerate(examples) if example.get(key) is None]
        if missing:
            raise ValueError(
                f"examples {missing[:5]} have no {key!r}; question CLIP embeddings must be computed before "
                "collation (training.data.add_question_clip_embeddings)"
                if key == "question_clip_embedding"
                else f"examples {missing[:5]} have no {key!r}"
            )
        tensor = torch.from_numpy(np.stack([np.asarray(example[key]) for example in examples]))
        return tensor if dtype is None else tensor.to(dtype)

    def _choices(self, examples: list[dict]) -> list[list[str]]:
        if any(example.get("choices") is None for example in examples):
            raise ValueError("examples have no choices and the collator has no open-ended answer vocabulary")
        choices = [list(example["choices"]) for example in examples]
        counts = {len(row) for row in choices}
        if len(counts) > 1:
            names = [
                example.get("question_id") if example.get("question_id") is not None else f"example {index}"
                for index, example in enumerate(examples)
            ]
            named = [f"{name}: {len(row)}" for name, row in zip(names, choices)]
            raise ValueError(
                f"questions of one batch have different numbers of choices ({', '.join(named)}); a batch needs one "
                "count: drop or pad the odd questions (MistQuestionDataset drops them and lists them in its report)"
            )
        return choices
