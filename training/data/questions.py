"""Question datasets: loading and checking them, their answer vocabulary, and what could not be used.

A question dataset (local folder of `{train,validation,test}.jsonl` or parquet, a `save_to_disk`
folder, or a Hub id) has columns `question_id, video_id, question, answer` and optionally `choices`
(multiple choice; the answer is the right choice's text or its index), `question_type`,
`feature_id` (the feature row, when not `video_id`) and `question_clip_embedding`. Errors name the
path or value (`UsageError`, `BrokenFileError`); the command that took it from a flag adds the flag.
"""

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, load_dataset
from tqdm.auto import tqdm

from processing.question_embeddings import EMBEDDING_COLUMN, embed_unique

from ..errors import BrokenFileError, UsageError, check_local_or_hub, hub_failure
from .saved import first_line, is_saved_dataset, load_saved_dataset

QUESTION_COLUMNS = ("question_id", "video_id", "question", "answer")
# Optional question column naming its row of the features when that is not `video_id` (STAR: the question's clip).
FEATURE_KEY_COLUMN = "feature_id"
QUESTION_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
SPLIT_ALIASES = {"validation": ("validation", "val", "valid", "dev"), "val": ("val", "validation", "valid", "dev")}

logger = logging.getLogger(__name__)


def load_questions(name_or_path: str) -> DatasetDict:
    """All splits of a question dataset: a folder of `{split}.jsonl`/parquet files, one such file, a
    `save_to_disk` folder or a Hub id. Raises `UsageError` / `BrokenFileError` naming the bad path."""
    remedy = "convert the annotations again with `mist prepare-dataset`"
    if check_local_or_hub(name_or_path) == "hub":
        try:
            loaded = load_dataset(str(name_or_path))
        except Exception as error:  # noqa: BLE001
            raise hub_failure(name_or_path, "dataset", error) from error
    else:
        loaded = _load_local_questions(Path(name_or_path).expanduser(), remedy)
    if isinstance(loaded, Dataset):
        loaded = DatasetDict({"train": loaded})
    for split, dataset in loaded.items():
        missing = [name for name in QUESTION_COLUMNS if name not in dataset.column_names]
        if missing:
            raise UsageError(
                f"{name_or_path}: split {split!r} of the question dataset lacks columns {missing}; "
                f"expected {list(QUESTION_COLUMNS)} (see `mist prepare-dataset`)"
            )
        if len(dataset) == 0:
            raise BrokenFileError(f"{name_or_path}: split {split!r} holds no questions; {remedy}")
    return loaded


def _load_local_questions(path: Path, remedy: str) -> Dataset | DatasetDict:
    if path.is_dir() and is_saved_dataset(path):
        return load_saved_dataset(path, remedy)
    files = [path] if path.is_file() else [p for p in sorted(path.iterdir()) if p.suffix in QUESTION_FILE_SUFFIXES]
    if not files:
        hub_layout = (path / "README.md").is_file() or any(path.glob("*/*.parquet"))
        hint = f": a Hub dataset's folder? convert it with `mist prepare-dataset {path} --output-dir DIR`"
        raise UsageError(
            f"{path}: the folder holds no question files ({{train,validation,test}}.jsonl or .parquet) and is not "
            f"a saved dataset{hint if hub_layout else ''}"
        )
    for file in files:
        if _is_empty_file(file):
            raise BrokenFileError(f"{file}: the file is empty, expected one question per line; {remedy}")
    try:
        if path.is_file():
            kind = {".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix, "json")
            return load_dataset(kind, data_files={_split_of_file(path): str(path)})
        return load_dataset(str(path))
    except Exception as error:  # noqa: BLE001
        raise BrokenFileError(
            f"{path}: the question files cannot be read ({type(error).__name__}: {first_line(error)})"
        ) from error


def _is_empty_file(path: Path) -> bool:
    size = path.stat().st_size
    return size == 0 or (size < 4096 and not path.read_bytes().strip())


def _split_of_file(path: Path) -> str:
    """`train.jsonl` -> train; `val.jsonl` / `dev.jsonl` -> validation; other stems name their own split."""
    stem = path.stem.lower()
    return "validation" if stem in ("val", "valid", "dev") else stem


def find_split(splits: DatasetDict, name: str) -> str | None:
    """The key of split `name` in `splits`, accepting `val`/`valid`/`dev` for `validation` and the reverse."""
    for candidate in SPLIT_ALIASES.get(name, (name,)):
        if candidate in splits:
            return candidate
    return None


def get_split(splits: DatasetDict, name: str, source: str) -> Dataset:
    """`splits[name]` (see `find_split` for the accepted aliases)."""
    key = find_split(splits, name)
    if key is None:
        raise UsageError(f"{source}: the dataset has no split {name!r}; it has {sorted(splits)}")
    return splits[key]


def add_question_clip_embeddings(splits: DatasetDict, encode_text, progress: bool = True) -> DatasetDict:
    """Fill in `question_clip_embedding` where a split lacks it, with `encode_text` (the processor's
    CLIP text tower, `processor.video_processor.encode_text`), each distinct question once."""
    for name, questions in splits.items():
        if EMBEDDING_COLUMN in questions.column_names:
            continue
        texts = questions["question"]
        distinct = len(set(texts))
        logger.info("computing CLIP embeddings of %d %s questions (%d distinct)", len(texts), name, distinct)
        bar = tqdm(total=distinct, desc=f"CLIP question embeddings ({name})", unit="question", disable=not progress)

        def encode(chunk, bar=bar):
            embeddings = encode_text(chunk)
            bar.update(len(chunk))
            return embeddings

        embeddings = embed_unique(texts, encode)
        bar.close()
        splits[name] = questions.add_column(EMBEDDING_COLUMN, [embeddings[text].tolist() for text in texts])
    return splits


def check_question_embeddings(splits: dict, clip_hidden_size: int, source: str) -> None:
    """Raise `UsageError` when stored `question_clip_embedding`s are not `clip_hidden_size` wide (another CLIP
    than the one that made the video features)."""
    for name, questions in splits.items():
        if EMBEDDING_COLUMN not in questions.column_names:
            continue
        width = len(questions[0][EMBEDDING_COLUMN])
        if width != clip_hidden_size:
            raise UsageError(
                f"{source}: split {name!r} has {width}-d question_clip_embedding but the video features are "
                f"{clip_hidden_size}-d: embed the questions with the CLIP that made the features "
                "(`mist extract-features --questions FILE --questions-output FILE`), or drop the column and the "
                "processor's CLIP computes it"
            )


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


def choice_label(answer, choices: list[str]) -> tuple[int, bool]:
    """(index of `answer` among `choices`, whether it was given as an index), or (-100, False).

    An answer is the text of a choice, or the index of the right choice (an int or a string of
    digits, NExT-QA's convention); a text that is also a choice wins over reading it as an index.
    """
    if isinstance(answer, (bool, np.bool_)):
        return -100, False
    if isinstance(answer, (int, np.integer)):
        index = int(answer)
    else:
        text = str(answer)
        if text in choices:
            return choices.index(text), False
        if not text.strip().isdigit():
            return -100, False
        index = int(text.strip())
    return (index, True) if 0 <= index < len(choices) else (-100, False)


EXAMPLES_KEPT = 10  # question ids listed per reason in a report

# Report fields that only mean something for multiple-choice questions (left out of open-ended reports).
MULTIPLE_CHOICE_FIELDS = (
    "choice_count",
    "answer_given_as_index",
    "answer_not_in_choices_examples",
    "unequal_choice_counts",
    "unequal_choice_examples",
    "ambiguous_duplicate_choices",
    "ambiguous_duplicate_examples",
)


@dataclass
class DataReport:
    """How many questions of a split were usable, and why the others were not.

    Multiple choice adds: the split's number of choices (the most common count); answers given as
    the index of the right choice; questions with another number of choices (dropped: a batch needs
    one count); questions whose answer text appears among several identical choices (dropped from
    training, kept in evaluation and scored against the first); with up to 10 `question_id`s each.
    """

    split: str
    total: int = 0
    kept: int = 0
    missing_features: int = 0
    answer_not_in_vocabulary: int = 0
    answer_not_in_choices: int = 0
    kept_without_label: int = 0
    missing_video_examples: list = field(default_factory=list)
    multiple_choice: bool = False
    training: bool = True
    choice_count: int | None = None
    answer_given_as_index: int = 0
    answer_not_in_choices_examples: list = field(default_factory=list)
    unequal_choice_counts: int = 0
    unequal_choice_examples: list = field(default_factory=list)
    ambiguous_duplicate_choices: int = 0
    ambiguous_duplicate_examples: list = field(default_factory=list)

    def as_dict(self) -> dict:
        data = {key: value for key, value in self.__dict__.items() if key not in ("multiple_choice", "training")}
        if not self.multiple_choice:
            for name in MULTIPLE_CHOICE_FIELDS:
                data.pop(name)
        return data

    def summary(self) -> str:
        parts = [f"{self.split}: {self.kept}/{self.total} questions used"]
        if self.missing_features:
            parts.append(f"{self.missing_features} without video features (e.g. {self.missing_video_examples[:3]})")
        if self.answer_not_in_vocabulary:
            verb = "scored as wrong" if self.kept_without_label else "dropped"
            parts.append(f"{self.answer_not_in_vocabulary} answers outside the vocabulary ({verb})")
        if self.answer_not_in_choices:
            verb = "scored as wrong" if not self.training else "dropped"
            parts.append(
                f"{self.answer_not_in_choices} answers not among their choices ({verb}: "
                f"{self.answer_not_in_choices_examples[:3]})"
            )
        if self.unequal_choice_counts:
            parts.append(
                f"{self.unequal_choice_counts} questions without {self.choice_count} choices "
                f"(dropped: {self.unequal_choice_examples[:3]})"
            )
        if self.ambiguous_duplicate_choices:
            verb = "dropped" if self.training else "kept, the first copy counts as right"
            parts.append(
                f"{self.ambiguous_duplicate_choices} answers matching several identical choices "
                f"({verb}: {self.ambiguous_duplicate_examples[:3]})"
            )
        if self.answer_given_as_index:
            parts.append(f"{self.answer_given_as_index} answers read as the index of the right choice")
        return "; ".join(parts)

    def note(self, reason: str, question_id) -> None:
        """Count one question under `reason` (a counter field) and keep its id among the examples."""
        setattr(self, reason, getattr(self, reason) + 1)
        examples = {
            "missing_features": self.missing_video_examples,
            "answer_not_in_choices": self.answer_not_in_choices_examples,
            "unequal_choice_counts": self.unequal_choice_examples,
            "ambiguous_duplicate_choices": self.ambiguous_duplicate_examples,
        }.get(reason)
        if examples is not None and len(examples) < EXAMPLES_KEPT:
            examples.append(question_id)
