"""MIST processor: the text encoder's tokenizer and the CLIP video processor behind one call.

`processor(videos=..., text=questions, choices=...)` returns exactly the inputs of
`MistForVideoQuestionAnswering`: CLIP features of the video and of the question, the tokenised
question and the tokenised answer candidates. Without videos it tokenises only, so a training
collator can pair it with stored features.
"""

from collections.abc import Sequence

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack

from .answer_cache_mist import AnswerCache
from .configuration_mist import MistConfig
from .video_processing_mist import MistVideoProcessor, MistVideoProcessorKwargs


class MistProcessorKwargs(ProcessingKwargs, total=False):
    videos_kwargs: MistVideoProcessorKwargs


def format_choices(question: str, choices: Sequence[str], template: str, sep_token: str | None) -> list[str]:
    """The answer texts of one multiple-choice question: each choice written with `template`.

    `{question}`, `{choice}` and `{sep}` (the tokenizer's separator) are filled in: `"{choice}"` gives the
    choice alone, `"{question} {sep} {choice}"` the NExT-QA / STAR reference's "question [SEP] choice".
    """
    return [template.format(question=question, choice=choice, sep=sep_token or "") for choice in choices]


def _feature_tensor(value, name: str, ndim: int) -> torch.Tensor:
    """Precomputed features as a float32 tensor with a batch dimension (`ndim` dimensions in all)."""
    if isinstance(value, (list, tuple)):
        value = torch.stack(
            [torch.as_tensor(np.asarray(item) if not torch.is_tensor(item) else item) for item in value]
        )
    tensor = torch.as_tensor(value).float()
    if tensor.ndim == ndim - 1:
        tensor = tensor.unsqueeze(0)  # one video
    if tensor.ndim != ndim:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected {ndim} dimensions (batch first)")
    return tensor


class MistProcessor(ProcessorMixin):
    r"""
    Builds MIST inputs from videos, questions and answer candidates.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): the text encoder's tokenizer (BERT), for questions and answers.
        video_processor ([`MistVideoProcessor`]): frame sampling and CLIP features (image and text towers).
        answer_vocabulary (`list[str]`, *optional*): the shared candidates of an open-ended dataset, in
            the order of the model's `id2label`. Tokenised once and cached.
        max_question_length (`int`, defaults to `MistConfig`'s, 30): question tokens kept (longer questions are
            truncated, whatever `max_length` the tokenizer carries).
        max_answer_length (`int`, defaults to `MistConfig`'s, 38): answer tokens kept.
        choice_template (`str`, defaults to `MistConfig`'s, `"{choice}"`): how a multiple-choice candidate becomes
            the answer text (see `format_choices`).

    The task definition belongs to the model's `MistConfig` (`task`, `choice_template`, `id2label`);
    `from_mist_config` copies it here, and `save_pretrained` saves the copy so that a processor loaded on
    its own still builds the candidates the model was trained with.
    """

    valid_processor_kwargs = MistProcessorKwargs
    text_kwargs = {"padding": "longest", "truncation": True, "return_token_type_ids": False}

    def __init__(
        self,
        tokenizer=None,
        video_processor=None,
        answer_vocabulary: Sequence[str] | None = None,
        max_question_length: int = MistConfig.max_question_length,
        max_answer_length: int = MistConfig.max_answer_length,
        choice_template: str = MistConfig.choice_template,
        **kwargs,
    ):
        self.answer_vocabulary = list(answer_vocabulary) if answer_vocabulary is not None else None
        self.max_question_length = max_question_length
        self.max_answer_length = max_answer_length
        self.choice_template = choice_template
        self._answer_cache = AnswerCache()  # the tokens of the last open-ended candidate set
        super().__init__(tokenizer, video_processor, **kwargs)

    @classmethod
    def from_mist_config(cls, config, tokenizer, video_processor: MistVideoProcessor | None = None, **video_kwargs):
        """A processor sized for `config` (frames, grid, crop, text lengths) with its task definition
        (answer vocabulary, choice template).

        `video_kwargs` (e.g. `clip_model_name`, `clip_pretrained`) go to a new `MistVideoProcessor`.
        """
        if video_processor is None:
            video_processor = MistVideoProcessor(
                num_frames=config.num_frames, grid_size=config.grid_size, crop_size=config.crop_size, **video_kwargs
            )
        return cls(
            tokenizer,
            video_processor,
            answer_vocabulary=config.answer_vocabulary,
            max_question_length=config.max_question_length,
            max_answer_length=config.max_answer_length,
            choice_template=config.choice_template,
        )

    def answer_candidates(self, question: str, choices: Sequence[str] | None = None) -> list[str]:
        """The texts the answer encoder scores for one question: its `choices` written with
        `choice_template`, or, for an open-ended question, the answer vocabulary."""
        if choices is not None:
            return format_choices(question, choices, self.choice_template, self.tokenizer.sep_token)
        if self.answer_vocabulary is None:
            raise ValueError("this processor has no answer vocabulary: pass the question's choices (or answers=...)")
        return list(self.answer_vocabulary)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        saved_files = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        # transformers leaves the remote-code `auto_map` on the saved object; saving should not change the processor.
        self.__dict__.pop("auto_map", None)
        return saved_files

    @property
    def model_input_names(self) -> list[str]:
        return [
            "frame_features",
            "patch_features",
            "question_clip_embeds",
            "input_ids",
            "attention_mask",
            "answer_input_ids",
            "answer_attention_mask",
        ]

    def __call__(
        self,
        text: str | list[str] | None = None,
        videos=None,
        answers: Sequence[str] | None = None,
        choices: Sequence[Sequence[str]] | None = None,
        labels: Sequence[int | str] | None = None,
        frame_features=None,
        patch_features=None,
        question_clip_embeds=None,
        return_question_clip_embeds: bool | None = None,
        **kwargs: Unpack[MistProcessorKwargs],
    ) -> BatchFeature:
        r"""
        Args:
            text (`str` or `list[str]`): the questions, one per video. Truncated to `max_question_length` tokens.
            videos: one video or a list: paths (mp4, webm, avi, mkv), frame folders, or frames `[T, H, W, 3]` uint8.
            answers (`list[str]`, *optional*): open-ended candidates shared by all questions; defaults to
                `answer_vocabulary`. Gives `answer_input_ids [A, La]`.
            choices (`list[list[str]]`, *optional*): multiple-choice candidates per question, the same number
                for each, written with `choice_template` (see `answer_candidates`). Gives
                `answer_input_ids [B, C, La]`, each candidate tokenised as one sequence (token type 0).
            labels (`list[int | str]`, *optional*): the right answer per question, as an index or as the
                answer text (looked up among the candidates). Gives `labels [B]`.
            frame_features, patch_features, question_clip_embeds (*optional*): precomputed features passed through
                (`[B, F, D]`, `[B, F, P, D]`, `[B, D]`) instead of computing them from `videos`.
            return_question_clip_embeds (`bool`, *optional*): embed the questions with CLIP's text tower.
                Defaults to True when `videos` are given, False otherwise.

        Returns:
            `BatchFeature` with the model's inputs among `frame_features [B, F, D]`, `patch_features
            [B, F, P, D]`, `question_clip_embeds [B, D]`, `input_ids`/`attention_mask [B, L]`,
            `answer_input_ids`/`answer_attention_mask` and `labels`.
        """
        if all(value is None for value in (text, videos, answers, choices, frame_features, patch_features)):
            raise ValueError(f"{self.__class__.__name__} needs at least one of text, videos, answers or choices")
        output_kwargs = self._merge_kwargs(
            MistProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs
        )
        text_kwargs, videos_kwargs = output_kwargs["text_kwargs"], output_kwargs["videos_kwargs"]
        # Features are tensors whatever the caller asks; `return_tensors="np"` converts everything at the end.
        return_tensors = text_kwargs.pop("return_tensors", None) or "pt"
        videos_kwargs.pop("return_tensors", None)

        questions = self._check_questions(text) if text is not None else None
        data = self._tokenize_questions(questions, text_kwargs) if questions is not None else {}
        data.update(self._video_features(videos, frame_features, patch_features, videos_kwargs))
        if return_question_clip_embeds is None:
            return_question_clip_embeds = videos is not None
        if question_clip_embeds is not None:
            data["question_clip_embeds"] = _feature_tensor(question_clip_embeds, "question_clip_embeds", ndim=2)
        elif questions is not None and return_question_clip_embeds:
            device = videos_kwargs.get("device")
            data["question_clip_embeds"] = self.video_processor.encode_text(questions, device=device)
        data.update(self._answer_inputs(questions, answers, choices, labels))

        self._check_batch_sizes(data)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _tokenize_questions(self, questions: list[str], text_kwargs: dict) -> dict[str, torch.Tensor]:
        """`input_ids` / `attention_mask` `[B, L]` of the questions, at most `max_question_length` tokens."""
        # The config's limit wins over a longer `max_length` saved with the tokenizer (MiniLM carries 128).
        requested = text_kwargs.get("max_length") or self.max_question_length
        text_kwargs["max_length"] = min(requested, self.max_question_length)
        text_kwargs["truncation"] = True
        encoding = self.tokenizer(questions, return_tensors="pt", **text_kwargs)
        return {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"]}

    def _video_features(self, videos, frame_features, patch_features, videos_kwargs: dict) -> dict[str, torch.Tensor]:
        """`frame_features [B, F, D]` / `patch_features [B, F, P, D]`: CLIP's of `videos`, or the given ones."""
        if videos is not None:
            if frame_features is not None or patch_features is not None:
                raise ValueError("pass either videos or precomputed frame_features/patch_features, not both")
            return dict(self.video_processor(videos, return_tensors="pt", **videos_kwargs))
        data = {}
        if frame_features is not None:
            data["frame_features"] = _feature_tensor(frame_features, "frame_features", ndim=3)
        if patch_features is not None:
            data["patch_features"] = _feature_tensor(patch_features, "patch_features", ndim=4)
        return data

    def _answer_inputs(self, questions, answers, choices, labels) -> dict[str, torch.Tensor]:
        """The tokenised candidates (per question `[B, C, La]` from `choices`, else shared `[A, La]`: `answers` or
        the vocabulary when there are questions) and the `labels [B]` among them."""
        data, candidates = {}, None
        if choices is not None:
            candidates = [list(row) for row in choices]
            data.update(self._encode_choices(self._choice_texts(questions, candidates)))
        elif answers is not None or (questions is not None and self.answer_vocabulary is not None):
            candidates = list(answers) if answers is not None else self.answer_vocabulary
            data.update(self._encode_answer_candidates(candidates))
        if labels is not None:
            data["labels"] = self._encode_labels(labels, candidates, per_question=choices is not None)
        return data

    @staticmethod
    def _check_questions(text) -> list[str]:
        questions = [text] if isinstance(text, str) else list(text)
        if not questions:
            raise ValueError("text is an empty list; expected one question per video")
        for index, question in enumerate(questions):
            if not isinstance(question, str):
                raise ValueError(f"question {index} is a {type(question).__name__}; expected a string")
            if not question.strip():
                raise ValueError(f"question {index} is empty ({question!r}); every question needs at least one word")
        return questions

    def _choice_texts(self, questions, choices: list[list[str]]) -> list[list[str]]:
        template = self.choice_template
        if "{question}" in template and (questions is None or len(questions) != len(choices)):
            raise ValueError(
                f"choice_template {template!r} needs each question: pass text with one question per choices list"
            )
        sep_token = self.tokenizer.sep_token
        return [
            format_choices(questions[index] if questions else "", row, template, sep_token)
            for index, row in enumerate(choices)
        ]

    def _tokenize_answers(self, answers: list[str]) -> dict[str, torch.Tensor]:
        encoding = self.tokenizer(
            answers,
            padding="longest",
            truncation=True,
            max_length=self.max_answer_length,
            return_token_type_ids=False,
            return_tensors="pt",
        )
        return {"answer_input_ids": encoding["input_ids"], "answer_attention_mask": encoding["attention_mask"]}

    def _encode_answer_candidates(self, candidates: list[str]) -> dict[str, torch.Tensor]:
        """`[A, La]` ids and mask of a shared candidate set; the last set is cached (the vocabulary, in training)."""
        if not candidates:
            raise ValueError("answers is empty; expected at least one answer candidate")
        key = AnswerCache.key(candidates, version=self.max_answer_length)
        return dict(self._answer_cache.get(key, lambda: self._tokenize_answers(candidates)))

    def _encode_choices(self, choices: list[list[str]]) -> dict[str, torch.Tensor]:
        """`[B, C, La]` ids and mask of per-question candidates."""
        if not choices:
            raise ValueError("choices is empty; expected one list of candidates per question")
        num_choices = len(choices[0])
        for index, row in enumerate(choices):
            if len(row) != num_choices or not row:
                raise ValueError(
                    f"question {index} has {len(row)} choices but question 0 has {num_choices}; "
                    "every question needs the same, non-zero number of choices"
                )
        encoding = self._tokenize_answers([answer for row in choices for answer in row])
        return {name: ids.view(len(choices), num_choices, -1) for name, ids in encoding.items()}  # [B, C, La]

    @staticmethod
    def _encode_labels(labels, candidates, per_question: bool) -> torch.Tensor:
        """Indices `[B]` of the right answers, given as indices or as answer texts."""
        indices = []
        for index, label in enumerate(labels):
            if isinstance(label, (int, np.integer)) or (torch.is_tensor(label) and label.ndim == 0):
                indices.append(int(label))
                continue
            row = candidates[index] if per_question else candidates
            if row is None or label not in row:
                raise ValueError(f"label {index} ({label!r}) is not among its answer candidates")
            indices.append(row.index(label))
        return torch.tensor(indices, dtype=torch.long)

    @staticmethod
    def _check_batch_sizes(data: dict) -> None:
        sizes = {
            name: value.shape[0]
            for name, value in data.items()
            if name not in ("answer_input_ids", "answer_attention_mask")
        }
        if data.get("answer_input_ids") is not None and data["answer_input_ids"].ndim == 3:
            sizes["choices"] = data["answer_input_ids"].shape[0]
        if len(set(sizes.values())) > 1:
            raise ValueError(f"inputs disagree on the batch size: {sizes}; expected one question per video")


__all__ = ["MistProcessor", "format_choices"]
