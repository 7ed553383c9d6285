"""A synthetic long-form video QA task, generated deterministically, for `mist demo`.

Each video has `num_frames` frames of a `grid_size x grid_size` patch grid with CLIP-like
features. Every object word has a random unit vector. A background patch is a noisy copy of the
video's scene vector. A few *events* happen, each in its own segment: two objects show up at two
grid cells of that segment's frames (a patch there is the object's vector plus a little noise).
A frame's global embedding shows the scene weakly and every object in view, plus noise, as a CLIP
frame embedding reflects its salient objects.

Question kinds (`SyntheticTaskConfig.question_kinds`):

* "what appeared together with the X?" -> the other object of X's event (the default kind);
* "did the X show up near the beginning or the end?" -> "beginning" / "end";
* "did the X show up before or after the Y?" -> "before" / "after" (two segments).

Objects, segments, cells and orders are drawn uniformly, so the question alone says nothing about
the answer: a question-only model is at chance (1/15 for "together", 1/2 for the others), while a
model that finds X's segment and looks at what is next to X answers. The question's CLIP-like
embedding is the normalised sum of the vectors of the objects it mentions, a template vector and
noise, so MIST's selectors can find X's segment and patch. Each question records its evidence
(segments and cells), to check what MIST selected.
"""

from dataclasses import dataclass

import numpy as np
from datasets import Array2D, Array3D, Dataset, DatasetDict, Features, Sequence, Value

from configuration.presets import DEMO

OBJECT_WORDS = (
    "apple", "ball", "book", "bottle", "box", "chair", "clock", "cup",
    "dog", "hat", "key", "lamp", "phone", "shoe", "towel", "bag",
)  # fmt: skip
ORDER_ANSWERS = ("before", "after")
WHEN_ANSWERS = ("beginning", "end")
QUESTION_KINDS = ("together", "when", "order")


@dataclass(frozen=True)
class SyntheticTaskConfig:
    """Sizes and noise of the synthetic task (feature sizes must match the model's config: the defaults
    are the `demo` preset's)."""

    num_frames: int = DEMO.model["num_frames"]
    num_segments: int = DEMO.model["num_segments"]
    grid_size: int = DEMO.model["grid_size"]
    feature_dim: int = DEMO.model["clip_hidden_size"]  # CLIP-like embedding width (config.clip_hidden_size)
    num_events: int = 2  # events per video, each in its own segment with two objects
    videos_per_split: tuple[int, int, int] = (5000, 200, 200)  # train, validation, test
    questions_per_video: int = 2
    # Kinds asked, in turn. "when" and "order" need MIST to read a segment's position, which it
    # learns far more slowly than what a segment shows: the demo's CPU budget fits "together".
    question_kinds: tuple[str, ...] = ("together",)
    background_noise: float = 1.0  # per-patch noise around the scene vector (relative to unit vectors)
    object_noise: float = 0.3  # per-frame noise on an object's patch
    scene_weight: float = 0.3  # weight of the scene in the frame embedding
    object_salience: float = 1.0  # weight of each visible object in the frame embedding
    frame_noise: float = 0.3  # noise added to the global frame embedding
    question_noise: float = 0.2  # noise on the question's CLIP-like embedding
    feature_scale: float = 10.0  # raw CLIP embeddings are not unit vectors
    seed: int = 0

    @property
    def frames_per_segment(self) -> int:
        return self.num_frames // self.num_segments

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def answer_vocabulary(config: "SyntheticTaskConfig | None" = None) -> list[str]:
    """Every answer the task's question kinds can have: the object words, then the temporal answers."""
    kinds = (config or SyntheticTaskConfig()).question_kinds
    vocabulary = list(OBJECT_WORDS)
    vocabulary += list(WHEN_ANSWERS) if "when" in kinds else []
    vocabulary += list(ORDER_ANSWERS) if "order" in kinds else []
    return vocabulary


def demo_features_schema(config) -> Features:
    """The features dataset's columns for a synthetic task of `config`'s sizes (this task's and the patch task's)."""
    return Features(
        {
            "video_id": Value("string"),
            "frame_features": Array2D((config.num_frames, config.feature_dim), "float16"),
            "patch_features": Array3D((config.num_frames, config.num_patches, config.feature_dim), "float16"),
        }
    )


def demo_question_schema(config, **extra_columns) -> Features:
    """The question files' columns for a synthetic task of `config`'s sizes, plus `extra_columns`."""
    return Features(
        {
            "question_id": Value("string"),
            "video_id": Value("string"),
            "question": Value("string"),
            "answer": Value("string"),
            "question_type": Value("string"),
            "question_clip_embedding": Sequence(Value("float32"), length=config.feature_dim),
            "evidence_segments": Sequence(Value("int32")),
            "evidence_cells": Sequence(Value("int32")),
            **extra_columns,
        }
    )


class SyntheticVideoQA:
    """Generates the task; the same config always gives the same videos and questions."""

    def __init__(self, config: SyntheticTaskConfig = SyntheticTaskConfig()):
        if 2 * config.num_events > len(OBJECT_WORDS):
            raise ValueError(
                f"num_events={config.num_events} needs {2 * config.num_events} distinct objects, have {len(OBJECT_WORDS)}"
            )
        if config.num_events > config.num_segments or config.num_events < 2:
            raise ValueError(f"num_events={config.num_events} must be in [2, num_segments={config.num_segments}]")
        self.config = config
        vocabulary_rng = np.random.default_rng([config.seed, 0])
        self.object_vectors = _unit(vocabulary_rng.standard_normal((len(OBJECT_WORDS), config.feature_dim)))
        self.template_vectors = _unit(vocabulary_rng.standard_normal((len(QUESTION_KINDS), config.feature_dim)))

    def _noise(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """Gaussian noise of expected norm 1 per vector, so noise levels are relative to unit features."""
        dim = self.config.feature_dim
        return rng.standard_normal((*shape, dim)) / np.sqrt(dim)

    # --- videos ------------------------------------------------------------------------------------

    def video(self, split_index: int, video_index: int) -> dict:
        """One video: features, its events and the rng for its questions."""
        config = self.config
        rng = np.random.default_rng([config.seed, 1, split_index, video_index])
        num_objects = 2 * config.num_events
        objects = rng.choice(len(OBJECT_WORDS), size=num_objects, replace=False).reshape(config.num_events, 2)
        segments = np.sort(rng.choice(config.num_segments, size=config.num_events, replace=False))
        event_order = rng.permutation(config.num_events)  # which object pair happens in which segment
        cells = np.stack([rng.choice(config.num_patches, size=2, replace=False) for _ in range(config.num_events)])

        scene = _unit(rng.standard_normal(config.feature_dim))
        noise = self._noise(rng, (config.num_frames, config.num_patches))
        patches = _unit(scene + config.background_noise * noise)  # [frames, patches, dim]
        frame_objects = np.zeros(
            (config.num_frames, config.feature_dim)
        )  # what each frame shows, for its global embedding
        events = []
        for slot, segment in enumerate(segments):
            pair = objects[event_order[slot]]
            frames = np.arange(segment * config.frames_per_segment, (segment + 1) * config.frames_per_segment)
            for obj, cell in zip(pair, cells[slot]):
                jitter = self._noise(rng, (len(frames),))
                patches[frames, cell] = _unit(self.object_vectors[obj] + config.object_noise * jitter)
                frame_objects[frames] += config.object_salience * self.object_vectors[obj]
            events.append(
                {"segment": int(segment), "objects": [int(o) for o in pair], "cells": [int(c) for c in cells[slot]]}
            )
        frame_noise = config.frame_noise * self._noise(rng, (config.num_frames,))
        # A global embedding shows the scene and, more weakly, each object in view.
        frames = _unit(config.scene_weight * scene + frame_objects + frame_noise)  # [frames, dim]
        return {
            "frame_features": (config.feature_scale * frames).astype(np.float16),
            "patch_features": (config.feature_scale * patches).astype(np.float16),
            "events": events,
            "rng": rng,
        }

    def questions(self, video: dict, video_id: str) -> list[dict]:
        """`questions_per_video` questions about one video, kinds alternating."""
        config, rng, events = self.config, video["rng"], video["events"]
        questions = []
        for number in range(config.questions_per_video):
            kinds = config.question_kinds
            kind = kinds[(number + int(rng.integers(len(kinds)))) % len(kinds)]
            if kind == "together":
                event = events[int(rng.integers(len(events)))]
                which = int(rng.integers(2))
                asked, answer = event["objects"][which], event["objects"][1 - which]
                text = f"what appeared together with the {OBJECT_WORDS[asked]}?"
                mentioned, evidence = [asked], [event]
                answer_text = OBJECT_WORDS[answer]
            elif kind == "when":
                event = events[int(rng.integers(len(events)))]
                asked = event["objects"][int(rng.integers(2))]
                text = f"did the {OBJECT_WORDS[asked]} show up near the beginning or the end?"
                mentioned, evidence = [asked], [event]
                answer_text = WHEN_ANSWERS[int(event["segment"] >= config.num_segments // 2)]
            else:
                first, second = rng.choice(len(events), size=2, replace=False)
                a, b = events[first], events[second]
                x, y = a["objects"][int(rng.integers(2))], b["objects"][int(rng.integers(2))]
                text = f"did the {OBJECT_WORDS[x]} show up before or after the {OBJECT_WORDS[y]}?"
                mentioned, evidence = [x, y], [a, b]
                answer_text = "before" if a["segment"] < b["segment"] else "after"
            embedding = (
                self.object_vectors[mentioned].sum(axis=0) + 0.5 * self.template_vectors[QUESTION_KINDS.index(kind)]
            )
            embedding = _unit(embedding + config.question_noise * self._noise(rng, ()))
            questions.append(
                {
                    "question_id": f"{video_id}_q{number}",
                    "video_id": video_id,
                    "question": text,
                    "answer": answer_text,
                    "question_type": kind,
                    "question_clip_embedding": (config.feature_scale * embedding).astype(np.float32),
                    "evidence_segments": [e["segment"] for e in evidence],
                    "evidence_cells": [c for e in evidence for c in e["cells"]],
                }
            )
        return questions

    # --- datasets ----------------------------------------------------------------------------------

    def features_schema(self) -> Features:
        return demo_features_schema(self.config)

    def question_schema(self) -> Features:
        return demo_question_schema(self.config)

    def generate(self) -> tuple[DatasetDict, Dataset]:
        """(questions with train/validation/test splits, features of every video)."""
        split_names = ("train", "validation", "test")
        question_rows = {name: [] for name in split_names}
        feature_rows = {"video_id": [], "frame_features": [], "patch_features": []}
        for split_index, (name, num_videos) in enumerate(zip(split_names, self.config.videos_per_split)):
            for video_index in range(num_videos):
                video_id = f"{name}_{video_index:05d}"
                video = self.video(split_index, video_index)
                feature_rows["video_id"].append(video_id)
                feature_rows["frame_features"].append(video["frame_features"])
                feature_rows["patch_features"].append(video["patch_features"])
                question_rows[name].extend(self.questions(video, video_id))
        questions = DatasetDict(
            {
                name: Dataset.from_dict(
                    {key: [row[key] for row in rows] for key in self.question_schema()}, features=self.question_schema()
                )
                for name, rows in question_rows.items()
            }
        )
        features = Dataset.from_dict(feature_rows, features=self.features_schema())
        return questions, features

    def palette(self) -> np.ndarray:
        """The colour `[len(OBJECT_WORDS), 3]` uint8 each object is drawn in by `render_frames`, in word order."""
        return np.random.default_rng([self.config.seed, 2]).uniform(40, 230, (len(OBJECT_WORDS), 3)).astype(np.uint8)

    def render_frames(self, video_id: str, size: int = 64) -> np.ndarray:
        """A picture of each frame `[F, size, size, 3]` uint8: grey background, a coloured cell per object."""
        config = self.config
        split_index = ("train", "validation", "test").index(video_id.rsplit("_", 1)[0])
        video = self.video(split_index, int(video_id.rsplit("_", 1)[1]))
        cell = size // config.grid_size
        images = np.full((config.num_frames, cell * config.grid_size, cell * config.grid_size, 3), 200, dtype=np.uint8)
        palette = self.palette()
        for event in video["events"]:
            start = event["segment"] * config.frames_per_segment
            for obj, index in zip(event["objects"], event["cells"]):
                row, col = divmod(index, config.grid_size)
                images[
                    start : start + config.frames_per_segment,
                    row * cell : (row + 1) * cell,
                    col * cell : (col + 1) * cell,
                ] = palette[obj]
        return images
