"""A synthetic task whose answers only the patches hold, for `mist demo --task patches`.

The first demo task (`synthetic_dataset`) asks for the *other* object of an event, and every segment
summary carries both objects, so MIST answers it whatever it selects. Here the answer sits in grid cells
of one segment and nowhere else:

* a video has `num_events` events, each in its own segment: a *salient* object (one of `OBJECT_WORDS`) at
  one grid cell of that segment's frames and a small *item* (one of `ITEM_WORDS`) in a cell next to it
  (4-neighbourhood);
* a frame's global embedding shows the scene and the salient objects in view, never the items and never
  where anything is (a bag of objects, as a CLIP frame embedding mostly is), so a segment summary tells
  which segment holds the asked object and nothing about the answer;
* "what is beside the X?" -> the item next to X (the answer is the content of one cell);
  "where is the X?" -> the quadrant of X's cell, "top left" ... "bottom right" (the answer is a cell's
  position, which only the patch tokens' box encodings carry);
* the question's CLIP-like embedding has cosine `question_alignment` (0.5) with the asked object's vector,
  the rest a kind template and noise, as CLIP's text-image similarity is partial: CLIP's zero-shot
  relevance points at X's segment and cell, not at the answer's cell.

Objects, items, segments, cells and kinds are drawn uniformly and independently, so the question alone is
at chance (1 / items for "beside", 1 / 4 for "where") and so is anything that reads only the summaries
(tested with a linear probe). Every question records its evidence: the segment, the asked object's cell,
and the cell that decides the answer (the item's for "beside", the object's own for "where").
"""

from dataclasses import dataclass

import numpy as np
from datasets import Dataset, DatasetDict, Features, Value

from configuration.presets import DEMO

from .synthetic_dataset import OBJECT_WORDS, _unit, demo_features_schema, demo_question_schema

ITEM_WORDS = (
    "coin", "pen", "ring", "spoon", "card", "leaf", "shell", "stone", "button", "candle", "glove", "sock",
)  # fmt: skip
QUADRANT_WORDS = ("top left", "top right", "bottom left", "bottom right")
PATCH_QUESTION_KINDS = ("beside", "where")


@dataclass(frozen=True)
class PatchTaskConfig:
    """Sizes and noise of the patch task (feature sizes must match the model's: the defaults are the `demo`
    preset's). `scale` multiplies the videos per split (`--scale`: what a GPU would train)."""

    num_frames: int = DEMO.model["num_frames"]
    num_segments: int = DEMO.model["num_segments"]
    grid_size: int = DEMO.model["grid_size"]
    feature_dim: int = DEMO.model["clip_hidden_size"]
    num_events: int = 3  # events per video, each in its own segment: one salient object and one item beside it
    videos_per_split: tuple[int, int, int] = (1500, 100, 200)  # train, validation, test (before `scale`)
    scale: float = 1.0
    questions_per_video: int = 2
    question_kinds: tuple[str, ...] = PATCH_QUESTION_KINDS  # asked in turn, from a random start per video
    question_alignment: float = 0.5  # cosine of the question's CLIP embedding with the asked object's vector
    background_noise: float = 1.0  # per-patch noise around the scene vector
    object_noise: float = 0.3  # per-frame noise on an object's or item's patch
    scene_weight: float = 0.3  # weight of the scene in the frame embedding
    object_salience: float = 1.0  # weight of each visible salient object in the frame embedding (items: 0)
    frame_noise: float = 0.3  # noise added to the global frame embedding
    feature_scale: float = 10.0  # raw CLIP embeddings are not unit vectors
    seed: int = 0

    def __post_init__(self):
        unknown = [kind for kind in self.question_kinds if kind not in PATCH_QUESTION_KINDS]
        if unknown or not self.question_kinds:
            raise ValueError(f"question_kinds={self.question_kinds!r}: expected some of {PATCH_QUESTION_KINDS}")
        if not 2 <= self.num_events <= min(self.num_segments, len(ITEM_WORDS)):
            raise ValueError(
                f"num_events={self.num_events} must be in [2, {min(self.num_segments, len(ITEM_WORDS))}] "
                "(one segment and one distinct item per event)"
            )
        if self.grid_size < 2 or self.grid_size % 2:
            raise ValueError(f"grid_size={self.grid_size}: expected an even size >= 2 (four quadrants)")
        if not 0.0 < self.question_alignment <= 1.0:
            raise ValueError(f"question_alignment={self.question_alignment}: expected a cosine in (0, 1]")
        if self.scale <= 0:
            raise ValueError(f"scale={self.scale}: expected a positive factor")

    @property
    def frames_per_segment(self) -> int:
        return self.num_frames // self.num_segments

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def split_sizes(self) -> tuple[int, int, int]:
        """Videos of the train, validation and test splits after `scale`."""
        return tuple(max(1, round(self.scale * size)) for size in self.videos_per_split)


def patch_answer_vocabulary(config: PatchTaskConfig | None = None) -> list[str]:
    """Every answer of the asked kinds: the items, then the quadrants."""
    kinds = (config or PatchTaskConfig()).question_kinds
    return (list(ITEM_WORDS) if "beside" in kinds else []) + (list(QUADRANT_WORDS) if "where" in kinds else [])


def quadrant_of(cell: int, grid_size: int) -> int:
    """Index in `QUADRANT_WORDS` of a row-major grid cell."""
    row, col = divmod(cell, grid_size)
    return 2 * int(row >= grid_size // 2) + int(col >= grid_size // 2)


def neighbour_cells(cell: int, grid_size: int) -> list[int]:
    """The 4-neighbourhood of a row-major grid cell, inside the grid."""
    row, col = divmod(cell, grid_size)
    steps = ((-1, 0), (1, 0), (0, -1), (0, 1))
    return [
        r * grid_size + c
        for r, c in ((row + dr, col + dc) for dr, dc in steps)
        if 0 <= r < grid_size and 0 <= c < grid_size
    ]


class PatchVideoQA:
    """Generates the patch task; the same config always gives the same videos and questions."""

    def __init__(self, config: PatchTaskConfig = PatchTaskConfig()):
        self.config = config
        vocabulary_rng = np.random.default_rng([config.seed, 10])
        self.object_vectors = _unit(vocabulary_rng.standard_normal((len(OBJECT_WORDS), config.feature_dim)))
        self.item_vectors = _unit(vocabulary_rng.standard_normal((len(ITEM_WORDS), config.feature_dim)))
        self.template_vectors = _unit(vocabulary_rng.standard_normal((len(PATCH_QUESTION_KINDS), config.feature_dim)))

    def _noise(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """Gaussian noise of expected norm 1 per vector."""
        return rng.standard_normal((*shape, self.config.feature_dim)) / np.sqrt(self.config.feature_dim)

    def video(self, split_index: int, video_index: int) -> dict:
        """One video: features `[F, D]` and `[F, P, D]`, its events and the rng for its questions."""
        config = self.config
        rng = np.random.default_rng([config.seed, 11, split_index, video_index])
        objects = rng.choice(len(OBJECT_WORDS), size=config.num_events, replace=False)
        items = rng.choice(len(ITEM_WORDS), size=config.num_events, replace=False)
        segments = rng.choice(config.num_segments, size=config.num_events, replace=False)

        scene = _unit(rng.standard_normal(config.feature_dim))
        noise = self._noise(rng, (config.num_frames, config.num_patches))
        patches = _unit(scene + config.background_noise * noise)  # [frames, patches, dim]
        frame_objects = np.zeros((config.num_frames, config.feature_dim))  # salient objects in view per frame
        events = []
        for obj, item, segment in zip(objects, items, segments):
            object_cell = int(rng.integers(config.num_patches))
            neighbours = neighbour_cells(object_cell, config.grid_size)
            item_cell = int(neighbours[int(rng.integers(len(neighbours)))])
            frames = np.arange(segment * config.frames_per_segment, (segment + 1) * config.frames_per_segment)
            for vector, cell in ((self.object_vectors[obj], object_cell), (self.item_vectors[item], item_cell)):
                jitter = self._noise(rng, (len(frames),))
                patches[frames, cell] = _unit(vector + config.object_noise * jitter)
            frame_objects[frames] += config.object_salience * self.object_vectors[obj]
            events.append(
                {
                    "segment": int(segment),
                    "object": int(obj),
                    "item": int(item),
                    "object_cell": object_cell,
                    "item_cell": item_cell,
                }
            )
        frame_noise = config.frame_noise * self._noise(rng, (config.num_frames,))
        frames = _unit(config.scene_weight * scene + frame_objects + frame_noise)  # [frames, dim]: no item, no position
        return {
            "frame_features": (config.feature_scale * frames).astype(np.float16),
            "patch_features": (config.feature_scale * patches).astype(np.float16),
            "events": events,
            "rng": rng,
        }

    def question_embedding(self, rng: np.random.Generator, obj: int, kind: str) -> np.ndarray:
        """Unit `question_alignment * object + sqrt(1 - alignment**2) * rest`, the rest a kind template plus
        noise made orthogonal to the object, so the cosine with the object is `question_alignment` exactly."""
        target = self.object_vectors[obj]
        rest = self.template_vectors[PATCH_QUESTION_KINDS.index(kind)] + self._noise(rng, ())
        rest = _unit(rest - (rest @ target) * target)
        alignment = self.config.question_alignment
        return alignment * target + np.sqrt(1 - alignment**2) * rest

    def questions(self, video: dict, video_id: str) -> list[dict]:
        """`questions_per_video` questions about one video, the kinds in turn."""
        config, rng, events = self.config, video["rng"], video["events"]
        start = int(rng.integers(len(config.question_kinds)))
        asked_events = rng.choice(len(events), size=min(config.questions_per_video, len(events)), replace=False)
        questions = []
        for number in range(config.questions_per_video):
            kind = config.question_kinds[(start + number) % len(config.question_kinds)]
            event = events[int(asked_events[number % len(asked_events)])]
            name = OBJECT_WORDS[event["object"]]
            if kind == "beside":
                text, answer, answer_cell = f"what is beside the {name}?", ITEM_WORDS[event["item"]], event["item_cell"]
            else:
                text = f"where is the {name}?"
                answer = QUADRANT_WORDS[quadrant_of(event["object_cell"], config.grid_size)]
                answer_cell = event["object_cell"]
            embedding = self.question_embedding(rng, event["object"], kind)
            questions.append(
                {
                    "question_id": f"{video_id}_q{number}",
                    "video_id": video_id,
                    "question": text,
                    "answer": answer,
                    "question_type": kind,
                    "question_clip_embedding": (config.feature_scale * embedding).astype(np.float32),
                    "evidence_segments": [event["segment"]],
                    "evidence_cells": [event["object_cell"], event["item_cell"]],
                    "answer_cell": answer_cell,
                }
            )
        return questions

    def features_schema(self) -> Features:
        return demo_features_schema(self.config)

    def question_schema(self) -> Features:
        return demo_question_schema(self.config, answer_cell=Value("int32"))

    def generate(self) -> tuple[DatasetDict, Dataset]:
        """(questions with train/validation/test splits, features of every video)."""
        split_names = ("train", "validation", "test")
        question_rows = {name: [] for name in split_names}
        feature_rows = {"video_id": [], "frame_features": [], "patch_features": []}
        for split_index, (name, num_videos) in enumerate(zip(split_names, self.config.split_sizes)):
            for video_index in range(num_videos):
                video_id = f"{name}_{video_index:05d}"
                video = self.video(split_index, video_index)
                feature_rows["video_id"].append(video_id)
                feature_rows["frame_features"].append(video["frame_features"])
                feature_rows["patch_features"].append(video["patch_features"])
                question_rows[name].extend(self.questions(video, video_id))
        schema = self.question_schema()
        questions = DatasetDict(
            {
                name: Dataset.from_dict({key: [row[key] for row in rows] for key in schema}, features=schema)
                for name, rows in question_rows.items()
            }
        )
        return questions, Dataset.from_dict(feature_rows, features=self.features_schema())
