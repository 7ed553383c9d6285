"""The `video-question-answering` pipeline of MIST: a video and questions in, ranked answers out, and
optionally what MIST looked at (kept segments with their times, kept patches with their scores).

    import modeling_mist                                   # registers the pipeline (or: trust_remote_code=True)
    from transformers import pipeline

    answerer = pipeline("video-question-answering", model="path/or/hub-id")
    answerer("clip.mp4", "what did the person hold?")      # [{"answer": "cup", "score": 0.71}, ...]
    answerer("clip.mp4", ["what did the person hold?", "where did they go?"])           # the video is encoded once
    answerer({"video": "clip.mp4", "question": "...", "choices": ["a", "b"]}, return_selection=True)

Saved MIST folders carry this file and a `custom_pipelines` entry in `config.json` (see
`register_pipeline`), so the pipeline also loads with `trust_remote_code=True` where this project is
not installed.
"""

import os
import shutil
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel
from transformers.dynamic_module_utils import get_relative_import_files
from transformers.pipelines import PIPELINE_REGISTRY, Pipeline

from .video_decoding_mist import load_video_frames, sample_frame_indices

TASK = "video-question-answering"
DEFAULT_BATCH_SIZE = 8  # questions per model forward when a call is given a list


def video_timing(
    total_frames: int, sampled_frames: Sequence[int], num_segments: int, fps: float | None = None
) -> dict:
    """When each sampled frame and each segment happens, in seconds when `fps` is known, else in source frames.

    `sampled_frames` `[F]` are the source-frame indices MIST sees (`sample_frame_indices`). Segment `s`
    covers the sampling intervals of sampled frames `[s * F/S, (s + 1) * F/S)`, so its start and end are
    interval bounds: the same `linspace(0, total_frames, F + 1)` bounds the frames were sampled from.
    Returns `{"fps", "duration", "total_frames", "unit", "frame_times" [F], "segment_bounds" [S, 2],
    "segment_frame_bounds" [S, 2]}` (`unit` is `"seconds"` or `"frames"`; frame bounds are `[start, end)`).
    """
    num_frames = len(sampled_frames)
    if num_frames % num_segments:
        raise ValueError(f"{num_frames} sampled frames do not split into {num_segments} equal segments")
    frames_per_segment = num_frames // num_segments
    bounds = np.linspace(0, total_frames, num_frames + 1).astype(np.int64)  # as in sample_frame_indices
    frame_bounds = [
        [int(bounds[segment * frames_per_segment]), int(bounds[(segment + 1) * frames_per_segment])]
        for segment in range(num_segments)
    ]
    scale = 1.0 / fps if fps else 1.0
    return {
        "fps": float(fps) if fps else None,
        "duration": round(total_frames * scale, 4) if fps else None,
        "total_frames": int(total_frames),
        "unit": "seconds" if fps else "frames",
        "frame_times": [round(int(index) * scale, 4) for index in sampled_frames],
        "segment_bounds": [[round(start * scale, 4), round(end * scale, 4)] for start, end in frame_bounds],
        "segment_frame_bounds": frame_bounds,
    }


def describe_selection(outputs, index: int, timing: dict) -> list[dict]:
    """What MIST kept for example `index` of a batch, one entry per ISTA layer.

    `outputs` holds the model's per-layer `segment_indices [B, k]`, `segment_scores [B, S]`,
    `frame_indices [B, k, F/S]`, `patch_indices [B, k, F/S, j]` and `patch_scores [B, k, F/S, C]` or None
    (attributes or keys). Kept segments and patches are listed in rank order (best first).
    """
    fields = ("segment_indices", "segment_scores", "frame_indices", "patch_indices", "patch_scores")
    # a ModelOutput (a dict) leaves out the fields that are None, such as patch_scores without patch selection
    values = {name: outputs.get(name) if isinstance(outputs, dict) else getattr(outputs, name) for name in fields}
    if values["patch_scores"] is None:  # no patch selection: every candidate kept, none scored
        values["patch_scores"] = [None] * len(values["segment_indices"])
    per_layer = zip(*(values[name] for name in fields))
    layers = []
    for layer_number, (segment_indices, segment_scores, frame_indices, patch_indices, patch_scores) in enumerate(
        per_layer, start=1
    ):
        scores = segment_scores[index].float().tolist()  # [S]
        segments = []
        for rank, segment in enumerate(segment_indices[index].tolist()):
            frames = []
            for position, frame in enumerate(frame_indices[index, rank].tolist()):
                frames.append(
                    {
                        "frame": frame,
                        "time": timing["frame_times"][frame],
                        "patches": patch_indices[index, rank, position].tolist(),
                        "patch_scores": None
                        if patch_scores is None
                        else [round(score, 5) for score in patch_scores[index, rank, position].float().tolist()],
                    }
                )
            start, end = timing["segment_bounds"][segment]
            segments.append(
                {"segment": segment, "score": round(scores[segment], 5), "start": start, "end": end, "frames": frames}
            )
        layers.append(
            {"layer": layer_number, "segment_scores": [round(score, 5) for score in scores], "segments": segments}
        )
    return layers


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


class MistVideoQuestionAnsweringPipeline(Pipeline):
    """Answers questions about videos with [`MistForVideoQuestionAnswering`] and its [`MistProcessor`].

    Call with `(video, question)`, `(video, question, choices=[...])`, `(video, [questions])`, a dict
    `{"video", "question", "choices"?, "fps"?}` or a list of such dicts. A video is a path (mp4, webm,
    avi, mkv), a folder of frame images or frames `[T, H, W, 3]` uint8; a dict may give stored
    `frame_features [F, D]` / `patch_features [F, P, D]` (and `question_clip_embedding [D]`) instead of
    (or besides, for the pixels) a video. Open-ended models rank their answer vocabulary; `choices`
    rank the given choices, written with the model's `choice_template`.

    Returns per question a list of `{"answer", "score"}` (softmax over the candidates, best first,
    `top_k` of them); with `return_selection=True` a dict `{"answers", "selection", "video"}` where
    `selection` has, per ISTA layer, all segment scores and the kept segments (start/end time, their
    frames with time, kept patches and every patch candidate's score: the grid's P row-major, then the
    whole frame with `frame_as_patch_candidate`; None without patch selection) and `video` the timing;
    `return_frames=True` adds the sampled frames `[F, H, W, 3]` as `"frames"`. A list input returns
    a list; questions are batched `batch_size` at a time and each video is encoded once per call.
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
        self._vocabulary_embeddings = None  # (candidates, embeddings) of the open-ended vocabulary

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        """Save the model, this pipeline's code and the whole processor (the base class saves only its tokenizer)."""
        super().save_pretrained(save_directory, **kwargs)
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

    def __call__(self, video=None, question=None, choices=None, batch_size: int | None = None, **kwargs):
        examples, single = self._examples(video, question, choices)
        _, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        forward_params = {**self._forward_params, **forward_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}
        batch_size = batch_size or self._batch_size or DEFAULT_BATCH_SIZE
        video_cache = {}
        results = [None] * len(examples)
        for first in range(0, len(examples), batch_size):
            # one forward per kind of candidates: the shared vocabulary, or n choices per question
            groups = {}
            for position in range(first, min(first + batch_size, len(examples))):
                choices_of = examples[position].get("choices")
                groups.setdefault(None if choices_of is None else len(choices_of), []).append(position)
            for positions in groups.values():
                model_inputs = self.preprocess([examples[p] for p in positions], video_cache=video_cache)
                model_outputs = self.forward(model_inputs, **forward_params)
                for position, result in zip(positions, self.postprocess(model_outputs, **postprocess_params)):
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

    def _video(self, example: dict, cache: dict) -> dict:
        """CLIP features, sampled frames and timing of an example's video, computed once per call."""
        config = self.model.config
        video = example.get("video")
        key = _video_key(video if video is not None else example["frame_features"])
        if key in cache:
            return cache[key]
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
            num_frames = frame_features.shape[0]
            timing = video_timing(
                num_frames, sample_frame_indices(num_frames, num_frames), config.num_segments, example.get("fps")
            )
        cache[key] = {
            "frame_features": frame_features,
            "patch_features": patch_features,
            "frames": frames,
            "timing": timing,
        }
        return cache[key]

    def preprocess(self, examples: list[dict], video_cache: dict | None = None) -> dict:
        """Model inputs of questions sharing one kind of candidates, and what postprocess needs."""
        videos = [self._video(example, video_cache if video_cache is not None else {}) for example in examples]
        questions = [example["question"] for example in examples]
        inputs = {
            "text": questions,
            "frame_features": torch.stack([video["frame_features"] for video in videos]),  # [B, F, D]
            "patch_features": torch.stack([video["patch_features"] for video in videos]),  # [B, F, P, D]
        }
        given = [example.get("question_clip_embedding") for example in examples]
        if all(embedding is not None for embedding in given):
            inputs["question_clip_embeds"] = np.stack([np.asarray(embedding, dtype=np.float32) for embedding in given])
        else:
            inputs["return_question_clip_embeds"] = True  # the processor's CLIP text tower
        if examples[0].get("choices") is not None:
            names = [example["choices"] for example in examples]
            inputs["choices"] = names
            vocabulary = None
        else:
            vocabulary = self.processor.answer_candidates(questions[0])
            names = [vocabulary] * len(examples)
            inputs["answers"] = vocabulary
        model_inputs = dict(self.processor(**inputs))
        # postprocess needs each video's timing and pixels, not its features
        videos = [{"timing": video["timing"], "frames": video["frames"]} for video in videos]
        return {"model_inputs": model_inputs, "vocabulary": vocabulary, "names": names, "videos": videos}

    def _forward(self, inputs: dict) -> dict:
        model_inputs = {
            name: value.to(self.model.dtype) if value.is_floating_point() else value
            for name, value in inputs["model_inputs"].items()
        }
        if inputs["vocabulary"] is not None:  # a fixed vocabulary is embedded once per pipeline
            cached = self._vocabulary_embeddings
            if cached is None or cached[0] != inputs["vocabulary"]:
                embeddings = self.model.get_answer_embeddings(
                    model_inputs["answer_input_ids"], model_inputs.get("answer_attention_mask")
                )
                cached = self._vocabulary_embeddings = (inputs["vocabulary"], embeddings)
            model_inputs.pop("answer_input_ids")
            model_inputs.pop("answer_attention_mask", None)
            model_inputs["answer_embeds"] = cached[1]
        outputs = self.model(**model_inputs)
        selection = {
            name: getattr(outputs, name)
            for name in ("segment_indices", "segment_scores", "frame_indices", "patch_indices", "patch_scores")
        }
        return {"logits": outputs.logits, **selection, "names": inputs["names"], "videos": inputs["videos"]}

    def postprocess(self, outputs: dict, top_k: int = 5, return_selection: bool = False, return_frames: bool = False):
        probabilities = outputs["logits"].float().softmax(dim=-1)  # [B, candidates]
        best = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
        results = []
        for index, (names, video) in enumerate(zip(outputs["names"], outputs["videos"])):
            answers = [
                {"answer": names[candidate], "score": float(score)}
                for candidate, score in zip(best.indices[index].tolist(), best.values[index].tolist())
            ]
            if not (return_selection or return_frames):
                results.append(answers)
                continue
            result = {"answers": answers}
            if return_selection:
                result["selection"] = describe_selection(outputs, index, video["timing"])
                result["video"] = {key: value for key, value in video["timing"].items()}
            if return_frames:
                result["frames"] = video["frames"]
            results.append(result)
        return results


# ----- registration (called by `modeling_mist/__init__.py`; not used where this file runs as remote code) -----

PIPELINE_ENTRY = {
    "impl": f"pipeline_mist.{MistVideoQuestionAnsweringPipeline.__name__}",
    "pt": ["AutoModel"],
    "type": "multimodal",
}


def _copy_pipeline_code(save_directory: str | os.PathLike) -> None:
    """This file and the files it imports with single-dot imports, for `trust_remote_code` loading."""
    for source in [__file__, *get_relative_import_files(__file__)]:
        shutil.copyfile(source, Path(save_directory) / Path(source).name)


def register_pipeline(config_class: type) -> None:
    """Make `pipeline("video-question-answering", model=...)` serve MIST, in this process and from saved folders.

    * Registers the pipeline class with transformers for this process (model loaded with `AutoModel`).
    * Every saved MIST config carries the `custom_pipelines` entry and this file beside it, so the
      folder works with `trust_remote_code=True` where this project is not installed (a config is
      saved by every model `save_pretrained`, the Trainer's `save_model` included).
    * transformers' `pipeline()` demands `trust_remote_code` for any task listed in a config's
      `custom_pipelines`, even one registered in-process; `config.custom_pipelines` therefore omits
      the task registered here (the saved value is kept and written back).
    """
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=MistVideoQuestionAnsweringPipeline, pt_model=AutoModel, type="multimodal"
    )
    if getattr(config_class, "_mist_pipeline_registered", False):
        return
    save_config = config_class.save_pretrained

    def save_pretrained(self, save_directory, *args, **kwargs):
        stored = self.__dict__.get("custom_pipelines") or {}
        self.__dict__["custom_pipelines"] = {**stored, TASK: dict(PIPELINE_ENTRY)}
        os.makedirs(save_directory, exist_ok=True)
        _copy_pipeline_code(save_directory)
        return save_config(self, save_directory, *args, **kwargs)

    def get_custom_pipelines(self) -> dict:
        stored = self.__dict__.get("custom_pipelines") or {}
        return {task: entry for task, entry in stored.items() if task != TASK}

    def set_custom_pipelines(self, value: dict) -> None:
        self.__dict__["custom_pipelines"] = value

    save_pretrained.__doc__ = save_config.__doc__
    config_class.save_pretrained = save_pretrained
    config_class.custom_pipelines = property(get_custom_pipelines, set_custom_pipelines)
    config_class._mist_pipeline_registered = True


__all__ = ["TASK", "MistVideoQuestionAnsweringPipeline", "describe_selection", "register_pipeline", "video_timing"]
