"""Question datasets joined lazily with per-video CLIP features.

A question dataset (local folder of `{train,validation,test}.jsonl` or parquet, a `save_to_disk`
folder, or a Hub id) has columns `question_id, video_id, question, answer` and optionally
`choices` (multiple choice), `question_type` and `question_clip_embedding`. Video features come
from the dataset `mist extract-features` writes (`video_id, frame_features [F, D],
patch_features [F, P, D]`). The features stay memory-mapped: only a `video_id -> row` map is held
in RAM and each question reads its video's row when it is fetched.
"""

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

from processing.prepare_dataset import canonical_split
from processing.question_embeddings import EMBEDDING_COLUMN, embed_unique

QUESTION_COLUMNS = ("question_id", "video_id", "question", "answer")
FEATURE_COLUMNS = ("video_id", "frame_features", "patch_features")

logger = logging.getLogger(__name__)


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").exists() or (path / "state.json").exists()


def load_questions(name_or_path: str) -> DatasetDict:
    """All splits of a question dataset: a data folder, a `save_to_disk` folder or a Hub id."""
    path = Path(name_or_path)
    if path.is_dir() and _is_saved_dataset(path):
        loaded = load_from_disk(str(path))
    else:
        loaded = load_dataset(str(name_or_path))
    if isinstance(loaded, Dataset):
        loaded = DatasetDict({"train": loaded})
    for split, dataset in loaded.items():
        missing = [name for name in QUESTION_COLUMNS if name not in dataset.column_names]
        if missing:
            raise ValueError(
                f"question dataset {name_or_path!r} split {split!r} lacks columns {missing}; "
                f"expected {list(QUESTION_COLUMNS)} (see `mist prepare-dataset`)"
            )
    return loaded


def find_split(splits: DatasetDict, name: str) -> str | None:
    """The key of split `name` in `splits`, aliases included (`val`, `valid`, `dev` = `validation`)."""
    if name in splits:
        return name
    wanted = canonical_split(name)
    return next((key for key in splits if canonical_split(key) == wanted), None)


def get_split(splits: DatasetDict, name: str, source: str) -> Dataset:
    """`splits[name]` (see `find_split` for the accepted aliases)."""
    key = find_split(splits, name)
    if key is None:
        raise ValueError(f"dataset {source!r} has no split {name!r}; it has {sorted(splits)}")
    return splits[key]


def add_question_clip_embeddings(splits: DatasetDict, encode_text) -> DatasetDict:
    """Fill in `question_clip_embedding` where a split lacks it, with `encode_text` (the processor's
    CLIP text tower, `processor.video_processor.encode_text`), each distinct question once."""
    for name, questions in splits.items():
        if EMBEDDING_COLUMN in questions.column_names:
            continue
        logger.info("computing CLIP embeddings of %d %s questions", len(questions), name)
        embeddings = embed_unique(questions["question"], encode_text)
        splits[name] = questions.add_column(
            EMBEDDING_COLUMN, [embeddings[text].tolist() for text in questions["question"]]
        )
    return splits


def load_features(name_or_path: str, split: str = "train") -> Dataset:
    """The video features dataset (memory-mapped), from a `save_to_disk` folder or a Hub id."""
    path = Path(name_or_path)
    if path.is_dir():
        loaded = load_from_disk(str(path))
        if isinstance(loaded, DatasetDict):
            loaded = loaded[split] if split in loaded else next(iter(loaded.values()))
    else:
        loaded = load_dataset(str(name_or_path), split=split)
    missing = [name for name in FEATURE_COLUMNS if name not in loaded.column_names]
    if missing:
        raise ValueError(
            f"features dataset {name_or_path!r} lacks columns {missing}; expected {list(FEATURE_COLUMNS)} "
            "(written by `mist extract-features`)"
        )
    return loaded


class VideoFeatureStore:
    """`video_id -> (frame_features [F, D], patch_features [F, P, D])` over a memory-mapped dataset."""

    def __init__(self, features: Dataset):
        self.dataset = features.select_columns(["frame_features", "patch_features"]).with_format("numpy")
        # Only the id column is read here; feature rows stay on disk until asked for.
        self.row_of = {str(video_id): row for row, video_id in enumerate(features["video_id"])}

    def __contains__(self, video_id: str) -> bool:
        return str(video_id) in self.row_of

    def __len__(self) -> int:
        return len(self.row_of)

    def __getitem__(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        row = self.dataset[self.row_of[str(video_id)]]
        return np.asarray(row["frame_features"]), np.asarray(row["patch_features"])


def is_multiple_choice(questions: Dataset) -> bool:
    return "choices" in questions.column_names


def build_answer_vocabulary(questions: Dataset, min_count: int = 1) -> list[str]:
    """Open-ended answers of a split, most frequent first (ties alphabetical)."""
    counts = Counter(str(answer) for answer in questions["answer"])
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [answer for answer, count in ranked if count >= min_count]


def read_answer_vocabulary(path: str) -> list[str]:
    """A JSON list of answers, or a JSON object answer -> index (the reference's `vocab.json`)."""
    with open(path, encoding="utf-8") as handle:
        loaded = json.load(handle)
    if isinstance(loaded, dict):
        return [answer for answer, _ in sorted(loaded.items(), key=lambda item: item[1])]
    return [str(answer) for answer in loaded]


@dataclass
class DataReport:
    """How many questions of a split were usable, and why the others were not."""

    split: str
    total: int = 0
    kept: int = 0
    missing_features: int = 0
    answer_not_in_vocabulary: int = 0
    answer_not_in_choices: int = 0
    kept_without_label: int = 0
    missing_video_examples: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items()}

    def summary(self) -> str:
        parts = [f"{self.split}: {self.kept}/{self.total} questions used"]
        if self.missing_features:
            parts.append(f"{self.missing_features} without video features (e.g. {self.missing_video_examples[:3]})")
        if self.answer_not_in_vocabulary:
            verb = "scored as wrong" if self.kept_without_label else "dropped"
            parts.append(f"{self.answer_not_in_vocabulary} answers outside the vocabulary ({verb})")
        if self.answer_not_in_choices:
            parts.append(f"{self.answer_not_in_choices} answers not among their choices")
        return "; ".join(parts)


class MistQuestionDataset(torch.utils.data.Dataset):
    """Questions of one split with their label and their video's features, fetched per item.

    Open-ended (`answer_vocabulary` given): the label is the answer's index in the vocabulary.
    Multiple choice (a `choices` column): the label is the answer's index among the choices.
    Questions whose video has no features are dropped; an answer with no label is dropped when
    `keep_unlabeled` is false (training) or kept with label -100 (evaluation: it counts as wrong).
    """

    def __init__(
        self,
        questions: Dataset,
        features: VideoFeatureStore,
        answer_vocabulary: list[str] | None = None,
        keep_unlabeled: bool = False,
        split: str = "train",
    ):
        self.questions = questions
        self.features = features
        self.multiple_choice = is_multiple_choice(questions)
        if not self.multiple_choice and answer_vocabulary is None:
            raise ValueError(f"split {split!r} is open-ended (no choices column): an answer vocabulary is required")
        label_of = {answer: index for index, answer in enumerate(answer_vocabulary or [])}
        self.report = DataReport(split=split)
        self.rows, self.labels = [], []

        columns = ["video_id", "answer"] + (["choices"] if self.multiple_choice else [])
        light = questions.select_columns(columns)
        for row, record in enumerate(light):
            self.report.total += 1
            video_id = str(record["video_id"])
            if video_id not in features:
                self.report.missing_features += 1
                if len(self.report.missing_video_examples) < 10:
                    self.report.missing_video_examples.append(video_id)
                continue
            answer = str(record["answer"])
            if self.multiple_choice:
                choices = [str(choice) for choice in record["choices"]]
                label = choices.index(answer) if answer in choices else -100
                if label < 0:
                    self.report.answer_not_in_choices += 1
            else:
                label = label_of.get(answer, -100)
                if label < 0:
                    self.report.answer_not_in_vocabulary += 1
            if label < 0:
                if not keep_unlabeled:
                    continue
                self.report.kept_without_label += 1
            self.rows.append(row)
            self.labels.append(label)
        self.report.kept = len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def record(self, index: int) -> dict:
        """The question's own columns (no features)."""
        return self.questions[self.rows[index]]

    def __getitem__(self, index: int) -> dict:
        record = self.record(index)
        frame_features, patch_features = self.features[record["video_id"]]
        example = {
            "question": record["question"],
            "frame_features": frame_features,
            "patch_features": patch_features,
            "labels": self.labels[index],
        }
        if record.get("question_clip_embedding") is not None:
            example["question_clip_embedding"] = np.asarray(record["question_clip_embedding"], dtype=np.float32)
        if self.multiple_choice:
            example["choices"] = list(record["choices"])
        return example

    def column(self, name: str, default=None) -> list:
        """One question column for the kept rows, in dataset order (e.g. question_id, question_type)."""
        if name not in self.questions.column_names:
            return [default] * len(self.rows)
        values = list(self.questions[name])
        return [values[row] for row in self.rows]
