"""The `video-question-answering` pipeline of MIST: a video and questions in, ranked answers out, and
optionally what MIST looked at (kept segments with their times, kept patches with their scores).

    import modeling_mist                                   # registers the pipeline (or: trust_remote_code=True)
    from transformers import pipeline

    answerer = pipeline("video-question-answering", model="path/or/hub-id")
    answerer("clip.mp4", "what did the person hold?")      # [{"answer": "cup", "score": 0.71}, ...]
    answerer("clip.mp4", ["what did the person hold?", "where did they go?"])           # the video is encoded once
    answerer({"video": "clip.mp4", "question": "...", "choices": ["a", "b"]}, return_selection=True)
    answerer(video, questions, batch_size=8)              # 8 questions per model forward

A `ChunkPipeline`: one input is one video with the questions asked about it (a list of questions,
or the dicts of a list that name the same video); `preprocess` decodes and encodes the video once
and yields one model input per question, which `Pipeline.__call__` batches (`batch_size`), runs on
the pipeline's `device` and `dtype`, and hands back to `postprocess` video by video.

Saved MIST folders carry this file and a `custom_pipelines` entry in `config.json`
(`MistConfig.save_pretrained`), so the pipeline also loads with `trust_remote_code=True` where this
project is not installed; `import modeling_mist` registers it in this process.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from transformers.pipelines.base import ChunkPipeline

from .answer_cache_mist import AnswerCache
from .configuration_mist import PIPELINE_ENTRY, PIPELINE_TASK
from .selection_mist import SELECTION_FIELDS, MistSelection, frame_timing, video_timing
from .video_decoding_mist import load_video_frames

TASK = PIPELINE_TASK


def _video_key(video) -> tuple:
    """Identifies a video within one call, to encode it once however many questions ask about it."""
    if isinstance(video, (str, os.PathLike)):
        return ("path", os.path.abspath(os.fspath(video)))
    return ("object", id(video))  # arrays live as long as the call's inputs


def check_choices(choices: Sequence, where: str = "the question") -> list[str]:
    """The candidate answers as text; raises a ValueError for none, an empty one or one given twice (each would be
    ranked, and a repeated answer would share its score between its copies)."""
    texts = [str(choice).strip() for choice in choices]
    if not texts:
        raise ValueError(f"{where} has an empty choices list; expected at least one candidate answer")
    if "" in texts:
        raise ValueError(f"{where}: choice {texts.index('')} is empty; expected every choice to be an answer in words")
    repeated = sorted({text for text in texts if texts.count(text) > 1})
    if repeated:
        raise ValueError(f"{where}: choices {texts} repeat {', '.join(map(repr, repeated))}; expected distinct answers")
    return texts


def _check_stored_features(frame_features: torch.Tensor, patch_features: torch.Tensor, config) -> None:
    """One line naming the given shapes and the model's, instead of a shape error deep inside the model."""
    expected = {
        "frame_features": ((config.num_frames, config.clip_hidden_size), "(num_frames, clip_hidden_size)"),
        "patch_features": (
            (config.num_frames, config.grid_size**2, config.clip_hidden_size),
            "(num_frames, grid_size**2, clip_hidden_size)",
        ),
    }
    for name, tensor in (("frame_features", frame_features), ("patch_features", patch_features)):
        shape, meaning = expected[name]
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"{name} has shape {tuple(tensor.shape)}; this model reads {shape} = {meaning}: "
                "pass features extracted for it (`mist extract-features --model MODEL`)"
            )


@dataclass
class QuestionContext:
    """What one question's model input carries besides tensors, through batching to `postprocess`."""

    candidates: list[str]  # the answers scored, in logit order: the vocabulary, or the question's choices
    choice_tokens: dict | None  # `answer_input_ids` / `answer_attention_mask` `[1, C, La]` of its choices
    timing: dict  # `video_timing` of its video
    frames: np.ndarray | None  # the sampled frames `[F, H, W, 3]`, when a video was decoded


class MistVideoQuestionAnsweringPipeline(ChunkPipeline):
    """Answers questions about videos with [`MistForVideoQuestionAnswering`] and its [`MistProcessor`].

    Call with `(video, question)`, `(video, question, choices=[...])`, `(video, [questions])`, a dict
    `{"video", "question", "choices"?, "fps"?}` or a list of such dicts. A video is a path (mp4, webm,
    avi, mkv), a folder of frame images or frames `[T, H, W, 3]` uint8; a dict may give stored
    `frame_features [F, D]` / `patch_features [F, P, D]` (and `question_clip_embedding [D]`) instead of
    (or besides, for the pixels) a video. Open-ended models rank their answer vocabulary; `choices`
    rank the given choices, written with the model's `choice_template`.

    Returns per question a list of `{"answer", "score"}` (softmax over the candidates, best first,
    `top_k` of them); with `return_selection=True` a dict `{"answers", "selection", "video"}` (the
    `MistSelection` record's JSON; `MistSelection.from_json(result)` reads it back) where `selection`
    has, per ISTA layer, all segment scores and the kept segments (start/end time, their frames with
    time, kept patches and every patch candidate's score: the grid's P row-major, then the whole frame
    with `frame_as_patch_candidate`; None without patch selection) and `video` the timing;
    `return_frames=True` adds the sampled frames `[F, H, W, 3]` as `"frames"`. A list input returns
    a list; each video is encoded once per call, and its questions are batched `batch_size` at a time
    with the other videos' (as in every pipeline: `pipeline(..., batch_size=8)` or per call).
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(f"{type(self).__name__} needs the model's MistProcessor (processor=...)")
        self.processor.video_processor.to(self.device)  # CLIP runs beside the model
        self._answer_cache = AnswerCache()  # the embeddings of the open-ended vocabulary

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        """Save the model, this pipeline's code and the whole processor (the base class saves only its tokenizer)."""
        shown = self.model.config.custom_pipelines  # transformers writes the registered task into it
        super().save_pretrained(save_directory, **kwargs)
        self.model.config.custom_pipelines = shown
        self.processor.save_pretrained(save_directory, **kwargs)

    def _sanitize_parameters(self, top_k=None, return_selection=None, return_frames=None, **kwargs):
        if kwargs:
            raise ValueError(f"unknown arguments {sorted(kwargs)}; expected top_k, return_selection, return_frames")
        postprocess = {}
        if top_k is not None:
            if int(top_k) < 1:
                raise ValueError(f"top_k={top_k}; expected at least 1")
            postprocess["top_k"] = int(top_k)
        if return_selection is not None:
            postprocess["return_selection"] = bool(return_selection)
        if return_frames is not None:
            postprocess["return_frames"] = bool(return_frames)
        return {}, {}, postprocess

    def __call__(self, video=None, question=None, choices=None, **kwargs):
        """Answer the questions (see the class docstring); `batch_size`, `num_workers` and the postprocess
        options (`top_k`, `return_selection`, `return_frames`) as keywords."""
        examples, single = self._examples(video, question, choices)
        videos = self._group_by_video(examples)
        results = [None] * len(examples)
        for questions, answered in zip(videos, super().__call__(videos, **kwargs)):
            for (position, _), result in zip(questions, answered):
                results[position] = result
        return results[0] if single else results

    def _examples(self, video, question, choices) -> tuple[list[dict], bool]:
        """The call's questions as dicts, and whether it asked a single one."""
        if isinstance(video, dict):
            examples, single = [dict(video)], True
        elif isinstance(video, list) and video and all(isinstance(item, dict) for item in video):
            examples, single = [dict(item) for item in video], False
        elif isinstance(question, (list, tuple)):
            examples, single = [{"video": video, "question": text, "choices": choices} for text in question], False
        else:
            examples, single = [{"video": video, "question": question, "choices": choices}], True
        for number, example in enumerate(examples):
            text = example.get("question")
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"question {number} is {text!r}; expected the question as non-empty text")
            if example.get("video") is None and example.get("frame_features") is None:
                raise ValueError(f"question {number} ({text!r}) has no video: pass a path, frame folder or frames")
            if example.get("choices") is not None:
                example["choices"] = check_choices(example["choices"], f"question {number} ({text!r})")
            elif self.model.config.multiple_choice:
                raise ValueError(f"the model is multiple choice: question {number} ({text!r}) needs its choices")
        return examples, single

    @staticmethod
    def _group_by_video(examples: list[dict]) -> list[list[tuple[int, dict]]]:
        """The pipeline's inputs: per video (first seen first), its questions with their positions in the call."""
        videos = {}
        for position, example in enumerate(examples):
            video = example.get("video")
            key = _video_key(video if video is not None else example["frame_features"])
            videos.setdefault(key, []).append((position, example))
        return list(videos.values())

    def _encode_video(self, example: dict) -> dict:
        """CLIP features `[F, D]` / `[F, P, D]`, sampled frames and timing of an example's video."""
        config = self.model.config
        video = example.get("video")
        frames, timing = None, None
        if example.get("frame_features") is None:
            self.processor.video_processor.check_clip_width(config.clip_hidden_size)  # before decoding
        if video is not None:
            sample = partial(self.processor.video_processor.sample_frames, num_frames=config.num_frames)
            frames, metadata = load_video_frames(video, sample)
            fps = metadata.fps or example.get("fps")
            timing = video_timing(metadata.total_num_frames, metadata.frames_indices, config.num_segments, fps)
        if example.get("frame_features") is not None:
            frame_features = torch.as_tensor(np.asarray(example["frame_features"]), dtype=torch.float32)
            patch_features = torch.as_tensor(np.asarray(example["patch_features"]), dtype=torch.float32)
            _check_stored_features(frame_features, patch_features, config)
        else:
            frame_features, patch_features = self.processor.video_processor.extract_features([frames])
            frame_features, patch_features = frame_features[0], patch_features[0]  # [F, D], [F, P, D]
        if timing is None:  # stored features only: times are sampled-frame positions
            timing = frame_timing(frame_features.shape[0], config.num_segments, example.get("fps"))
        return {"frame_features": frame_features, "patch_features": patch_features, "frames": frames, "timing": timing}

    def preprocess(self, questions: list[tuple[int, dict]]):
        """One video's questions: its features computed once, then one model input per question."""
        video = self._encode_video(questions[0][1])
        for number, (_, example) in enumerate(questions):
            yield {**self._question_inputs(example, video), "is_last": number == len(questions) - 1}

    def _question_inputs(self, example: dict, video: dict) -> dict:
        """A batch of one question: the processor's tensors, and its `QuestionContext` under `context`."""
        inputs = {
            "text": [example["question"]],
            "frame_features": video["frame_features"][None],  # [1, F, D]
            "patch_features": video["patch_features"][None],  # [1, F, P, D]
        }
        if example.get("question_clip_embedding") is not None:
            inputs["question_clip_embeds"] = np.asarray(example["question_clip_embedding"], dtype=np.float32)[None]
        else:
            inputs["return_question_clip_embeds"] = True  # the processor's CLIP text tower
        choices = example.get("choices")
        if choices is not None:
            inputs["choices"] = [choices]
        candidates = choices if choices is not None else self.processor.answer_candidates(example["question"])
        model_inputs = dict(self.processor(**inputs))
        # the answers are not batched with the questions: the vocabulary is embedded once, choices per kind
        answer_tokens = {name: model_inputs.pop(name, None) for name in ("answer_input_ids", "answer_attention_mask")}
        context = QuestionContext(
            candidates=candidates,
            choice_tokens=answer_tokens if choices is not None else None,
            timing=video["timing"],
            frames=video["frames"],
        )
        return {**model_inputs, "context": context}

    def _forward(self, inputs: dict) -> dict:
        """The model on a batch of questions: one forward per kind of candidates (the shared vocabulary, or C
        choices). Returns `logits [B, most candidates]` (-inf beyond a question's own) and each selection field
        stacked over the ISTA layers `[B, layers, ...]`."""
        contexts = inputs["context"] if isinstance(inputs["context"], list) else [inputs["context"]]
        tensors = {
            name: value.to(self.model.dtype) if value.is_floating_point() else value
            for name, value in inputs.items()
            if isinstance(value, torch.Tensor)
        }
        kinds = {}
        for position, context in enumerate(contexts):
            tokens = context.choice_tokens
            kinds.setdefault(None if tokens is None else tokens["answer_input_ids"].shape[1], []).append(position)
        width = max(len(context.candidates) for context in contexts)
        logits = torch.full((len(contexts), width), float("-inf"), device=self.device)
        selection = dict.fromkeys(SELECTION_FIELDS)
        for kind, positions in kinds.items():
            rows = torch.tensor(positions, device=self.device)
            model_inputs = {name: value[rows] for name, value in tensors.items()}
            if kind is None:
                model_inputs["answer_embeds"] = self._answer_embeddings(contexts[positions[0]].candidates)
            else:
                model_inputs.update(self._choice_inputs([contexts[position] for position in positions]))
            outputs = self.model(**model_inputs)
            logits[rows, : outputs.logits.shape[-1]] = outputs.logits.float()
            for name in SELECTION_FIELDS:
                layers = getattr(outputs, name)
                if layers is None:  # patch_scores without patch selection
                    continue
                stacked = torch.stack(list(layers), dim=1)  # [b, layers, ...]
                if selection[name] is None:
                    selection[name] = stacked.new_zeros((len(contexts), *stacked.shape[1:]))
                selection[name][rows] = stacked
        return {"logits": logits, **selection, "context": inputs["context"], "is_last": inputs["is_last"]}

    def _answer_embeddings(self, vocabulary: list[str]) -> torch.Tensor:
        """`[A, hidden]` embeddings of the open-ended vocabulary, computed once per pipeline (and model placement)."""

        def embed() -> torch.Tensor:
            tokens = self.processor(answers=vocabulary)
            return self.model.get_answer_embeddings(
                tokens["answer_input_ids"].to(self.device), tokens["answer_attention_mask"].to(self.device)
            )

        return self._answer_cache.get(AnswerCache.key(vocabulary, encoder=self.model), embed)

    def _choice_inputs(self, contexts: list[QuestionContext]) -> dict:
        """`answer_input_ids` / `answer_attention_mask` `[b, C, La]` of questions with C choices each, padded
        to the longest choice."""
        length = max(context.choice_tokens["answer_input_ids"].shape[-1] for context in contexts)
        padded = {}
        pad_token_id = self.processor.tokenizer.pad_token_id or 0
        for name, fill in (("answer_input_ids", pad_token_id), ("answer_attention_mask", 0)):
            rows = [context.choice_tokens[name][0] for context in contexts]  # each [C, La_i]
            batch = rows[0].new_full((len(rows), rows[0].shape[0], length), fill)
            for index, row in enumerate(rows):
                batch[index, :, : row.shape[-1]] = row
            padded[name] = batch.to(self.device)
        return padded

    def postprocess(
        self, outputs: list[dict], top_k: int = 5, return_selection: bool = False, return_frames: bool = False
    ) -> list:
        """One video's questions: each one's ranked answers (and selection, timing, frames when asked)."""
        return [self._answer(output, top_k, return_selection, return_frames) for output in outputs]

    @staticmethod
    def _answer(output: dict, top_k: int, return_selection: bool, return_frames: bool):
        context = output["context"]
        probabilities = output["logits"][0, : len(context.candidates)].float().softmax(dim=-1)  # [candidates]
        best = probabilities.topk(min(top_k, probabilities.shape[-1]))
        answers = [
            {"answer": context.candidates[candidate], "score": float(score)}
            for candidate, score in zip(best.indices.tolist(), best.values.tolist())
        ]
        if not (return_selection or return_frames):
            return answers
        result = {"answers": answers}
        if return_selection:
            layers = {name: None if output[name] is None else output[name].unbind(1) for name in SELECTION_FIELDS}
            result.update(MistSelection.from_outputs(layers, 0, context.timing).to_json())
        if return_frames:
            result["frames"] = context.frames
        return result


__all__ = [
    "PIPELINE_ENTRY",
    "check_choices",
    "SELECTION_FIELDS",
    "TASK",
    "MistSelection",
    "MistVideoQuestionAnsweringPipeline",
    "video_timing",
]
