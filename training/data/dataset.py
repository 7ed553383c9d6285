"""The torch Dataset of one split: questions with their label and their video's features."""

from collections import Counter

import numpy as np
import torch
from datasets import Dataset

from processing.question_embeddings import EMBEDDING_COLUMN

from .features import VideoFeatureStore
from .questions import EXAMPLES_KEPT, FEATURE_KEY_COLUMN, DataReport, choice_label, is_multiple_choice


class ExampleBatch(list):
    """Examples fetched together (`MistQuestionDataset.__getitems__`): a list of example dicts, plus their
    feature arrays already stacked in `stacked`, which `MistDataCollator` uses instead of stacking again."""

    def __init__(self, examples: list[dict], stacked: dict[str, np.ndarray]):
        super().__init__(examples)
        self.stacked = stacked


class MistQuestionDataset(torch.utils.data.Dataset):
    """Questions of one split with their label and their video's features, fetched per item.

    Open-ended (`answer_vocabulary` given): the label is the answer's index in the vocabulary.
    Multiple choice (a `choices` column): the label is the answer's index among the choices (the
    answer is the choice's text or its index, see `choice_label`).
    Questions whose video has no features are dropped, and so are multiple-choice questions whose
    number of choices differs from the split's (a batch needs one count); an answer with no label is
    dropped when `keep_unlabeled` is false (training) or kept with label -100 (evaluation: it counts
    as wrong). Every reason is counted, with question ids, in `report`.
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
        self.report = DataReport(split=split, multiple_choice=self.multiple_choice, training=not keep_unlabeled)
        self.rows, self.labels = [], []

        # STAR-style questions each have their own clip: they read the feature row named by `feature_id`.
        self.key_column = FEATURE_KEY_COLUMN if FEATURE_KEY_COLUMN in questions.column_names else "video_id"
        columns = [self.key_column, "answer"] + (["choices"] if self.multiple_choice else [])
        columns += ["question_id"] if "question_id" in questions.column_names else []
        light = questions.select_columns(columns)
        if self.multiple_choice:
            counts = Counter(len(choices) for choices in light["choices"])
            self.report.choice_count = max(counts, key=lambda count: (counts[count], count)) if counts else None
        for row, record in enumerate(light):
            self.report.total += 1
            question_id = record.get("question_id", f"row {row}")
            video_id = str(record[self.key_column])
            if video_id not in features:
                self.report.missing_features += 1
                examples = self.report.missing_video_examples
                if len(examples) < EXAMPLES_KEPT and video_id not in examples:  # distinct videos, not questions
                    examples.append(video_id)
                continue
            if self.multiple_choice:
                label = self._choice_label(record, question_id, keep_unlabeled)
                if label is None:
                    continue
            else:
                label = label_of.get(str(record["answer"]), -100)
                if label < 0:
                    self.report.answer_not_in_vocabulary += 1
            if label < 0:
                if not keep_unlabeled:
                    continue
                self.report.kept_without_label += 1
            self.rows.append(row)
            self.labels.append(label)
        self.report.kept = len(self.rows)
        # Views for reading examples (`__getitems__`): the text columns as lists, the embeddings as one array.
        text_columns = ["question_id", "question", "choices", self.key_column]
        self._text_view = questions.select_columns(
            list(dict.fromkeys(name for name in text_columns if name in questions.column_names))
        )
        self._embedding_view = None
        if EMBEDDING_COLUMN in questions.column_names:
            self._embedding_view = questions.select_columns([EMBEDDING_COLUMN]).with_format("numpy")

    def _choice_label(self, record: dict, question_id, keep_unlabeled: bool) -> int | None:
        """The label of a multiple-choice question, or None when the question is dropped."""
        choices = [str(choice) for choice in record["choices"]]
        if len(choices) != self.report.choice_count:
            self.report.note("unequal_choice_counts", question_id)
            return None
        label, given_as_index = choice_label(record["answer"], choices)
        if label < 0:
            self.report.note("answer_not_in_choices", question_id)
            return label
        self.report.answer_given_as_index += int(given_as_index)
        if choices.count(choices[label]) > 1:
            self.report.note("ambiguous_duplicate_choices", question_id)
            if not keep_unlabeled:
                return None  # identical candidates get identical scores: no gradient can tell them apart
            label = choices.index(choices[label])
        return label

    def __len__(self) -> int:
        return len(self.rows)

    def record(self, index: int) -> dict:
        """The question's own columns (no features)."""
        return self.questions[self.rows[index]]

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> ExampleBatch:
        """The examples of a batch read with one fetch of their question rows and one of their features
        (what a `DataLoader` calls): no per-row Python work on the feature arrays."""
        rows = [self.rows[index] for index in indices]
        records = self._text_view[rows]  # column -> list
        frame_features, patch_features = self.features.batch([str(key) for key in records[self.key_column]])
        stacked = {"frame_features": frame_features, "patch_features": patch_features}
        if self._embedding_view is not None:
            embeddings = self._embedding_view[rows][EMBEDDING_COLUMN]
            if embeddings.dtype != object:  # rows without an embedding leave it to the collator to name them
                stacked[EMBEDDING_COLUMN] = embeddings.astype(np.float32, copy=False)
        examples = []
        for position, index in enumerate(indices):
            example = {
                "question_id": records["question_id"][position] if "question_id" in records else None,
                "question": records["question"][position],
                "frame_features": frame_features[position],
                "patch_features": patch_features[position],
                "labels": self.labels[index],
            }
            if EMBEDDING_COLUMN in stacked:
                example[EMBEDDING_COLUMN] = stacked[EMBEDDING_COLUMN][position]
            if self.multiple_choice:
                example["choices"] = list(records["choices"][position])
            examples.append(example)
        return ExampleBatch(examples, stacked)

    def column(self, name: str, default=None) -> list:
        """One question column for the kept rows, in dataset order (e.g. question_id, question_type)."""
        if name not in self.questions.column_names:
            return [default] * len(self.rows)
        values = list(self.questions[name])
        return [values[row] for row in self.rows]
