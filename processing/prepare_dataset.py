"""Convert published video QA questions into this project's question schema (`mist prepare-dataset`).

    mist prepare-dataset SOURCE... --output-dir DIR [--format F] [--config NAME] [--split S]

SOURCE is annotation files (CSV, JSON, JSON lines or parquet), a Hub dataset id, or a local folder
laid out like that Hub repository (what `hf download --repo-type dataset ID --local-dir DIR` writes:
parquet files per config and split, listed by the `configs:` of its README.md). The output is
`DIR/{train,validation,test}.jsonl`, one question per line:

    question_id    str   unique id
    video_id       str   the stem of the video file in the dataset's archives: joins `mist extract-features`
    question       str
    answer         str   the answer text (for multiple choice: one of `choices`)
    choices        list[str]   multiple choice only
    question_type  str or list[str]   what accuracy is broken down by (a list counts in each)

plus a few format-specific columns (see `processing.question_formats`, which also lists the formats).
The format is recognised from the columns unless `--format` names it. The split of an annotation
file comes from its name (`train`, `val`/`validation`, `test`) or `--split`; that of a Hub table from
the repository's configs, where `--split` keeps one split and `--config` one config (without it,
every config is converted when they all have the same columns, e.g. STAR's four question types).
Questions that cannot be used are counted per reason in `DIR/conversion_report.json`, never fatal.
"""

import csv
import glob
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from processing.file_utils import may_be_hub_repo_id, write_atomically, write_text_atomically
from processing.question_formats import CONVERTERS, Skip, detect_format

SPLIT_ALIASES = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "dev": "validation",
    "validation": "validation",
    "test": "test",
}
QUESTION_SUFFIXES = (".parquet", ".csv", ".json", ".jsonl", ".txt")
HUB_QUESTION_PATTERNS = ["README.md", *(f"{prefix}*{suffix}" for prefix in ("", "**/") for suffix in QUESTION_SUFFIXES)]


class AnnotationFileError(RuntimeError):
    """An annotation file exists but cannot be read as the chosen format."""


@dataclass
class ConversionReport:
    """What happened to the questions of one output split."""

    read: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)

    def skip(self, reason: str):
        self.skipped[reason] += 1

    def as_dict(self) -> dict:
        return {"read": self.read, "written": self.written, "skipped": dict(self.skipped)}


@dataclass(frozen=True)
class QuestionTable:
    """One file of questions and the split (and Hub config) it belongs to."""

    path: Path
    split: str
    config: str | None = None


def split_from_filename(path: Path) -> str:
    """`train.csv` -> train, `STAR_val.json` -> validation, `test_balanced.txt` -> test."""
    for token in re.split(r"[^a-z]+", path.stem.lower()):
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    raise ValueError(
        f"cannot tell the split of {str(path)!r} from its name (expected train, val/validation or test in it); "
        "pass --split"
    )


# --- where the questions are ------------------------------------------------------------------------


def question_tables(inputs: list[str | Path], config: str | None, split: str | None) -> list[QuestionTable]:
    """The question files of `inputs`: annotation files, or one Hub id / folder laid out like a Hub repo."""
    if len(inputs) == 1 and not Path(inputs[0]).is_file():
        folder = Path(inputs[0]) if Path(inputs[0]).is_dir() else _download_hub_questions(str(inputs[0]))
        if folder is not None:
            return hub_tables(folder, config, split)
    if config is not None:
        raise ValueError("--config names a config of a Hub dataset or its folder; the inputs are annotation files")
    if split is not None and len(inputs) != 1:
        raise ValueError(f"--split names the split of a single input; got {len(inputs)} inputs")
    missing = [str(path) for path in inputs if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"no such annotation file: {', '.join(missing)}")
    questions_files = {Path(path) for path in inputs if Path(path).stem.endswith("_q")}
    inputs = [path for path in inputs if not _answers_of_a_questions_file(Path(path), questions_files)]
    return [QuestionTable(Path(path), _canonical(split) if split else split_from_filename(Path(path))) for path in inputs]


def _answers_of_a_questions_file(path: Path, questions_files: set[Path]) -> bool:
    """`train_a.json` given together with `train_q.json`: read as part of it (`read_table`)."""
    return path.stem.endswith("_a") and path.with_name(f"{path.stem[:-2]}_q{path.suffix}") in questions_files


def _canonical(split: str) -> str:
    return SPLIT_ALIASES.get(split.lower(), split)


def _download_hub_questions(repo_id: str) -> Path | None:
    """The local copy of a Hub dataset's question files (no videos), or None when `repo_id` is no Hub id."""
    from huggingface_hub import snapshot_download

    if not may_be_hub_repo_id(repo_id):
        return None
    try:
        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset", allow_patterns=HUB_QUESTION_PATTERNS))
    except Exception as error:  # noqa: BLE001  (network, authentication and missing repositories alike)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FileNotFoundError(
            f"no such annotation file or folder {repo_id}, and no Hub dataset by that id could be downloaded "
            f"({type(error).__name__}: {reason})"
        ) from error


def hub_tables(folder: Path, config: str | None, split: str | None) -> list[QuestionTable]:
    """The question files of a Hub dataset's folder, per config and split (README.md `configs:`, else the
    files' names), narrowed to `config` and `split`."""
    configs = _readme_configs(folder) or _configs_from_names(folder)
    if not configs:
        raise ValueError(f"{folder}: no question files (parquet, csv, json) and no `configs:` in its README.md")
    if config is not None:
        if config not in configs:
            raise ValueError(f"{folder}: no config {config!r}; it has {', '.join(configs)}")
        configs = {config: configs[config]}
    elif len({_columns(tables[0].path) for tables in configs.values()}) > 1:
        raise ValueError(
            f"{folder}: its configs {', '.join(configs)} hold different questions (other columns); pass --config"
        )
    tables = [table for tables in configs.values() for table in tables]
    if split is not None:
        tables = [table for table in tables if table.split == _canonical(split)]
        if not tables:
            raise ValueError(f"{folder}: no split {split!r} in {', '.join(configs)}")
    return tables


def _readme_configs(folder: Path) -> dict[str, list[QuestionTable]]:
    """`configs:` of the dataset card's YAML header: `{config_name, data_files: [{split, path}] | path}`."""
    readme = folder / "README.md"
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    header = yaml.safe_load(match.group(1)) if match else None
    configs = {}
    for entry in (header or {}).get("configs") or []:
        name = str(entry.get("config_name", "default"))
        data_files = entry.get("data_files")
        if isinstance(data_files, (str, list)) and not (data_files and isinstance(data_files[0], dict)):
            data_files = [{"split": "train", "path": data_files}]
        tables = []
        for item in data_files or []:
            patterns = item["path"] if isinstance(item["path"], list) else [item["path"]]
            for pattern in patterns:
                for path in sorted(glob.glob(str(folder / pattern), recursive=True)):
                    tables.append(QuestionTable(Path(path), _canonical(str(item.get("split", "train"))), name))
        if tables:
            configs[name] = tables
    return configs


def _configs_from_names(folder: Path) -> dict[str, list[QuestionTable]]:
    """Without a `configs:` header: each question file's split from its name, its config from its folder."""
    configs = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.suffix not in QUESTION_SUFFIXES or any(part.startswith(".") for part in relative.parts):
            continue
        name = relative.parts[0] if len(relative.parts) > 1 else "default"
        configs.setdefault(name, []).append(QuestionTable(path, split_from_filename(path), name))
    return configs


def _columns(path: Path) -> tuple[str, ...]:
    if path.suffix == ".parquet":
        return tuple(sorted(pq.read_schema(path).names))
    records = read_table(path)
    return tuple(sorted(records[0])) if records else ()


# --- reading and converting -------------------------------------------------------------------------


def read_table(path: Path) -> list[dict]:
    """The records of a CSV, JSON (a list, or an object keyed by question id), JSON lines or parquet file.

    ActivityNet-QA's release keeps questions and answers apart (`train_q.json`, `train_a.json`): a `*_q`
    file with its `*_a` beside it gives the records joined by `question_id`.
    """
    answers = _answers_file(path)
    if answers is not None:
        answer_of = {str(record["question_id"]): record for record in _read_one(answers)}
        return [{**answer_of.get(str(record["question_id"]), {}), **record} for record in _read_one(path)]
    return _read_one(path)


def _answers_file(path: Path) -> Path | None:
    """`train_a.json` beside `train_q.json`, or None."""
    if not path.stem.endswith("_q"):
        return None
    answers = path.with_name(f"{path.stem[:-2]}_a{path.suffix}")
    return answers if answers.is_file() else None


def _read_one(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    with open(path, newline="", encoding="utf-8") as handle:
        if path.suffix == ".csv":
            return list(csv.DictReader(handle))
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in handle if line.strip()]
        loaded = json.load(handle)
    if isinstance(loaded, dict):  # AGQA (and some Env-QA releases): keyed by question id
        return [{"question_id": key, **value} for key, value in loaded.items()]
    return loaded


def convert(
    dataset_format: str | None,
    inputs: list[str | Path],
    output_dir: str | Path,
    split: str | None = None,
    config: str | None = None,
) -> dict[str, ConversionReport]:
    """Convert the questions of `inputs` (see the module doc); returns one report per written split."""
    if dataset_format is not None and dataset_format not in CONVERTERS:
        raise ValueError(f"unknown format {dataset_format!r}; expected one of {', '.join(CONVERTERS)}")
    tables = question_tables(inputs, config, split)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    grouped: dict[str, list[QuestionTable]] = {}
    for table in tables:
        grouped.setdefault(table.split, []).append(table)

    reports, formats = {}, set()
    for name, split_tables in grouped.items():
        report = ConversionReport()
        # Each split file is written under a temporary name and renamed: a kill leaves the earlier file whole.
        write_atomically(
            str(output_dir / f"{name}.jsonl"),
            lambda temporary: formats.update(_write_split(temporary, dataset_format, split_tables, report)),
        )
        reports[name] = report
    _write_report(output_dir, formats, inputs, config, reports)
    return reports


def _write_report(output_dir: Path, formats: set, inputs, config, reports: dict) -> None:
    """`conversion_report.json`, keeping the splits an earlier run wrote into the same folder."""
    path = output_dir / "conversion_report.json"
    earlier = json.loads(path.read_text()).get("splits", {}) if path.is_file() else {}
    source = {"format": ", ".join(sorted(formats)), "inputs": [str(item) for item in inputs], "config": config}
    splits = {**earlier, **{name: {**report.as_dict(), **source} for name, report in reports.items()}}
    record = {**source, "splits": splits}
    write_text_atomically(str(path), json.dumps(record, indent=2))


def _write_split(target: str, dataset_format: str | None, tables: list[QuestionTable], report) -> set[str]:
    seen, formats = set(), set()
    with open(target, "w", encoding="utf-8") as out:
        for table in tables:
            try:
                records = read_table(table.path)
            except (csv.Error, json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
                raise AnnotationFileError(f"{table.path}: cannot be read ({type(error).__name__}: {error})") from error
            table_format = dataset_format or detect_format(records[0] if records else {}, str(table.path))
            formats.add(table_format)
            if table_format == "agqa" and records and "question_id" not in records[0]:
                raise AnnotationFileError(f"{table.path}: AGQA questions are a JSON object keyed by question id")
            converter = CONVERTERS[table_format]
            for record in records:
                report.read += 1
                try:
                    converted = converter(record)
                except Skip as skip:
                    report.skip(str(skip))
                    continue
                except (KeyError, TypeError, AttributeError, ValueError) as error:
                    detail = f"missing field {error}" if isinstance(error, KeyError) else f"{type(error).__name__}: {error}"
                    raise AnnotationFileError(f"{table.path}: not a {table_format} annotation file ({detail})") from error
                if converted["question_id"] in seen:
                    report.skip("duplicate question_id")
                    continue
                seen.add(converted["question_id"])
                out.write(json.dumps(converted, ensure_ascii=False) + "\n")
                report.written += 1
    return formats
