"""Question datasets joined lazily with per-video CLIP features.

A question dataset (local folder of `{train,validation,test}.jsonl` or parquet, a `save_to_disk`
folder, or a Hub id) has columns `question_id, video_id, question, answer` and optionally
`choices` (multiple choice; the answer is the right choice's text or its index), `question_type`
and `question_clip_embedding`. Video features come from the dataset `mist extract-features` writes
(`video_id, frame_features [F, D], patch_features [F, P, D]`); their sizes are read from it
(`feature_geometry`). The features stay memory-mapped: only a `video_id -> row` map is held in RAM
and each question reads its video's row when it is fetched. Unreadable or misnamed inputs raise
`UsageError` / `BrokenFileError` (`training.errors`) naming the path.
"""

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from datasets import Dataset, DatasetDict, load_dataset, load_from_disk
from tqdm.auto import tqdm

from processing.feature_store import SETTINGS_PREFIX
from processing.question_embeddings import EMBEDDING_COLUMN, embed_unique

from .errors import BrokenFileError, UsageError, check_local_or_hub, hub_failure

QUESTION_COLUMNS = ("question_id", "video_id", "question", "answer")
# Optional question column naming its row of the features when that is not `video_id` (STAR: the question's clip).
FEATURE_KEY_COLUMN = "feature_id"
FEATURE_COLUMNS = ("video_id", "frame_features", "patch_features")
QUESTION_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")

logger = logging.getLogger(__name__)


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").exists() or (path / "state.json").exists()


def _load_saved_dataset(path: Path, remedy: str) -> Dataset | DatasetDict:
    """`load_from_disk`, with a truncated or corrupt Arrow file named in a `BrokenFileError`."""
    try:
        return load_from_disk(str(path))
    except Exception as error:  # noqa: BLE001  (pyarrow, json and datasets raise many kinds)
        broken = _first_unreadable_arrow_file(path) or path
        raise BrokenFileError(
            f"{broken}: cannot be read ({type(error).__name__}: {_first_line(error)}); the saved dataset in "
            f"{path} is truncated or corrupt: {remedy}"
        ) from error


def _first_unreadable_arrow_file(path: Path) -> Path | None:
    for arrow_file in sorted(path.rglob("*.arrow")):
        try:
            with pa.memory_map(str(arrow_file)) as source:
                pa.ipc.open_stream(source).read_all()
        except (OSError, pa.ArrowInvalid):
            return arrow_file
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_empty_file(path: Path) -> bool:
    size = path.stat().st_size
    return size == 0 or (size < 4096 and not path.read_bytes().strip())


def load_questions(name_or_path: str, flag: str = "--dataset") -> DatasetDict:
    """All splits of a question dataset: a folder of `{split}.jsonl`/parquet files, one such file, a
    `save_to_disk` folder or a Hub id. Raises `UsageError` / `BrokenFileError` naming the bad path."""
    remedy = "convert the annotations again with `mist prepare-dataset`"
    if check_local_or_hub(name_or_path, flag) == "hub":
        try:
            loaded = load_dataset(str(name_or_path))
        except Exception as error:  # noqa: BLE001
            raise hub_failure(name_or_path, flag, "dataset", error) from error
    else:
        path = Path(name_or_path).expanduser()
        if path.is_dir() and _is_saved_dataset(path):
            loaded = _load_saved_dataset(path, remedy)
        else:
            files = (
                [path] if path.is_file() else [p for p in sorted(path.iterdir()) if p.suffix in QUESTION_FILE_SUFFIXES]
            )
            if not files:
                raise UsageError(
                    f"{flag} {path}: the folder holds no question files ({{train,validation,test}}.jsonl or "
                    ".parquet) and is not a saved dataset"
                )
            for file in files:
                if _is_empty_file(file):
                    raise BrokenFileError(f"{file}: the file is empty, expected one question per line; {remedy}")
            try:
                if path.is_file():
                    kind = {".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix, "json")
                    loaded = load_dataset(kind, data_files={_split_of_file(path): str(path)})
                else:
                    loaded = load_dataset(str(path))
            except Exception as error:  # noqa: BLE001
                raise BrokenFileError(
                    f"{path}: the question files cannot be read ({type(error).__name__}: {_first_line(error)})"
                ) from error
    if isinstance(loaded, Dataset):
        loaded = DatasetDict({"train": loaded})
    for split, dataset in loaded.items():
        missing = [name for name in QUESTION_COLUMNS if name not in dataset.column_names]
        if missing:
            raise UsageError(
                f"question dataset {name_or_path!r} split {split!r} lacks columns {missing}; "
                f"expected {list(QUESTION_COLUMNS)} (see `mist prepare-dataset`)"
            )
        if len(dataset) == 0:
            raise BrokenFileError(f"{name_or_path}: split {split!r} holds no questions; {remedy}")
    return loaded


def _split_of_file(path: Path) -> str:
    """`train.jsonl` -> train; `val.jsonl` / `dev.jsonl` -> validation; other stems name their own split."""
    stem = path.stem.lower()
    return "validation" if stem in ("val", "valid", "dev") else stem


SPLIT_ALIASES = {"validation": ("validation", "val", "valid", "dev"), "val": ("val", "validation", "valid", "dev")}


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
        raise UsageError(f"dataset {source!r} has no split {name!r}; it has {sorted(splits)}")
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
                f"--dataset {source}: split {name!r} has {width}-d question_clip_embedding but the video features are "
                f"{clip_hidden_size}-d: embed the questions with the CLIP that made the features "
                "(`mist extract-features --questions FILE --questions-output FILE`), or drop the column and the "
                "processor's CLIP computes it"
            )


def load_features(name_or_path: str, split: str = "train", flag: str = "--features") -> Dataset:
    """The video features dataset (memory-mapped), from a `save_to_disk` folder or a Hub id.

    Raises `UsageError` for a path that does not exist or is not a folder, `BrokenFileError` for a
    folder that is not a saved dataset or whose Arrow files are truncated.
    """
    remedy = "extract the features again with `mist extract-features`"
    if check_local_or_hub(name_or_path, flag) == "hub":
        try:
            loaded = load_dataset(str(name_or_path), split=split)
        except Exception as error:  # noqa: BLE001
            raise hub_failure(name_or_path, flag, "features dataset", error) from error
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise UsageError(f"{flag} {path}: a file; expected the folder that `mist extract-features` writes")
        if not _is_saved_dataset(path):
            raise BrokenFileError(
                f"{path}: not a saved dataset (no state.json or dataset_dict.json); expected the folder that "
                "`mist extract-features --output-dir` writes (state.json, dataset_info.json, data-*.arrow)"
            )
        loaded = _load_saved_dataset(path, remedy)
        if isinstance(loaded, DatasetDict):
            loaded = loaded[split] if split in loaded else next(iter(loaded.values()))
    missing = [name for name in FEATURE_COLUMNS if name not in loaded.column_names]
    if missing:
        raise UsageError(
            f"features dataset {name_or_path!r} lacks columns {missing}; expected {list(FEATURE_COLUMNS)} "
            "(written by `mist extract-features`)"
        )
    if len(loaded) == 0:
        raise BrokenFileError(f"{name_or_path}: the features dataset holds no videos; {remedy}")
    return loaded


@dataclass(frozen=True)
class FeatureGeometry:
    """The sizes that stored features carry: frames F, patches P per frame, CLIP width D."""

    num_frames: int
    num_patches: int
    hidden_size: int

    @property
    def grid_size(self) -> int | None:
        """`sqrt(P)` when P is a square (MIST's patches are a grid), else None."""
        side = math.isqrt(self.num_patches)
        return side if side * side == self.num_patches else None

    def describe(self) -> str:
        return f"{self.num_frames} frames x {self.num_patches} patches of {self.hidden_size}-d CLIP features"


def feature_geometry(features: Dataset, name: str) -> FeatureGeometry:
    """F, P and D of a features dataset, from its declared shapes (`Array2D`/`Array3D`) or else its first row."""
    frame_shape = getattr(features.features["frame_features"], "shape", None)
    patch_shape = getattr(features.features["patch_features"], "shape", None)
    if frame_shape is None or patch_shape is None or None in (*frame_shape, *patch_shape):
        row = features.select_columns(["frame_features", "patch_features"]).with_format("numpy")[0]
        frame_shape, patch_shape = np.asarray(row["frame_features"]).shape, np.asarray(row["patch_features"]).shape
    if len(frame_shape) != 2 or len(patch_shape) != 3 or frame_shape[0] != patch_shape[0]:
        raise BrokenFileError(
            f"{name}: frame_features {tuple(frame_shape)} and patch_features {tuple(patch_shape)} do not fit "
            "together; expected [F, D] and [F, P, D]"
        )
    if frame_shape[1] != patch_shape[2]:
        raise BrokenFileError(
            f"{name}: frame_features are {frame_shape[1]}-d but patch_features {patch_shape[2]}-d; "
            "expected one CLIP width"
        )
    return FeatureGeometry(int(frame_shape[0]), int(patch_shape[1]), int(frame_shape[1]))


def feature_settings(features: Dataset) -> dict | None:
    """The CLIP model, weights and sizes `mist extract-features` recorded in the dataset, or None."""
    description = features.info.description or ""
    if not description.startswith(SETTINGS_PREFIX):
        return None
    try:
        return json.loads(description[len(SETTINGS_PREFIX) :])
    except json.JSONDecodeError:
        return None


def check_features_fit_model(geometry: FeatureGeometry, config, features_name: str, model_name: str) -> None:
    """Raise `UsageError` when stored features do not have the sizes a trained model reads."""
    expected = FeatureGeometry(config.num_frames, config.num_patches, config.clip_hidden_size)
    if geometry != expected:
        raise UsageError(
            f"--features {features_name}: {geometry.describe()}, but the model {model_name} reads "
            f"{expected.describe()} (its config.json: num_frames, grid_size**2, clip_hidden_size); extract "
            f"features for this model with `mist extract-features VIDEOS --model {model_name} --output-dir DIR`"
        )


class VideoFeatureStore:
    """`video_id -> (frame_features [F, D], patch_features [F, P, D])` over a memory-mapped dataset."""

    def __init__(self, features: Dataset):
        self.dataset = features.select_columns(["frame_features", "patch_features"]).with_format("numpy")
        # The Arrow table on disk, and the physical row of each logical row when the dataset is a selection.
        self.table = features.data.table
        self._physical_rows = None if features._indices is None else np.asarray(features._indices.column(0))
        self.shapes = {name: tuple(features.features[name].shape) for name in ("frame_features", "patch_features")}
        self._chunk_views = {}  # built lazily, so that DataLoader workers build their own after the fork
        # Only the id column is read here; feature rows stay on disk until asked for.
        self.row_of = {str(video_id): row for row, video_id in enumerate(features["video_id"])}

    def __contains__(self, video_id: str) -> bool:
        return str(video_id) in self.row_of

    def __len__(self) -> int:
        return len(self.row_of)

    def __getitem__(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        row = self.dataset[self.row_of[str(video_id)]]
        return np.asarray(row["frame_features"]), np.asarray(row["patch_features"])

    def batch(self, video_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """`frame_features [n, F, D]` and `patch_features [n, F, P, D]` of `video_ids` (repeats allowed), in
        their stored dtype: one gather per column from zero-copy views of the memory-mapped Arrow buffers."""
        rows = np.asarray([self.row_of[str(video_id)] for video_id in video_ids], dtype=np.int64)
        if self._physical_rows is not None:
            rows = self._physical_rows[rows]
        return self._gather("frame_features", rows), self._gather("patch_features", rows)

    def _gather(self, name: str, rows: np.ndarray) -> np.ndarray:
        views, starts = self._views(name)
        if len(views) == 1:
            return views[0][rows]
        chunk_of = np.searchsorted(starts, rows, side="right") - 1
        out = np.empty((len(rows), *views[0].shape[1:]), dtype=views[0].dtype)
        for chunk in np.unique(chunk_of):
            where = chunk_of == chunk
            out[where] = views[chunk][rows[where] - starts[chunk]]
        return out

    def _views(self, name: str) -> tuple[list[np.ndarray], np.ndarray]:
        """Per Arrow chunk of column `name`, its rows as one `[rows, *shape]` array over the file's buffer."""
        if name not in self._chunk_views:
            views, starts = [], [0]
            for chunk in self.table.column(name).chunks:
                values = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
                while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type):
                    values = values.flatten()  # a fixed-shape array is nested lists over one flat buffer
                dtype = np.dtype(values.type.to_pandas_dtype())
                flat = np.frombuffer(values.buffers()[1], dtype=dtype)[values.offset : values.offset + len(values)]
                views.append(flat.reshape(len(chunk), *self.shapes[name]))
                starts.append(starts[-1] + len(chunk))
            self._chunk_views[name] = (views, np.asarray(starts[:-1]))
        return self._chunk_views[name]


class ExampleBatch(list):
    """Examples fetched together (`MistQuestionDataset.__getitems__`): a list of example dicts, plus their
    feature arrays already stacked in `stacked`, which `MistDataCollator` uses instead of stacking again."""

    def __init__(self, examples: list[dict], stacked: dict[str, np.ndarray]):
        super().__init__(examples)
        self.stacked = stacked


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
                if len(self.report.missing_video_examples) < EXAMPLES_KEPT:
                    self.report.missing_video_examples.append(video_id)
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
        # Views for batched reads (`__getitems__`): the text columns as lists, the embeddings as one array.
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
        record = self.record(index)
        frame_features, patch_features = self.features[record[self.key_column]]
        example = {
            "question_id": record.get("question_id"),
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
