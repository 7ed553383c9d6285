"""Convert published video QA annotations into this project's question schema (`mist prepare-dataset`).

`mist prepare-dataset --format nextqa|agqa|star|envqa INPUT... --output-dir DIR` writes
`DIR/{train,validation,test}.jsonl`, one question per line:

    question_id    str   unique id
    video_id       str   joins the features dataset written by `mist extract-features`
    question       str
    answer         str   the answer text (for multiple choice: one of `choices`)
    choices        list[str]   multiple choice only
    question_type  str or list[str]   what accuracy is broken down by (a list counts in each)

plus a few format-specific columns kept for analysis (listed per format below). The split of each
input file comes from its name (`train`, `val`/`validation`, `test`), or from `--split`.
Questions that cannot be used (no answer, answer not among the choices, empty text) are counted
per reason and reported, never fatal.

Formats (as published; the reference `showlab/mist` loaders read the same files):

* `nextqa`: NExT-QA `train.csv` / `val.csv` / `test.csv`, columns
  `video,frame_count,width,height,question,answer,qid,type,a0..a4`; `answer` is the index of the
  right candidate. question_id = `{video}_{qid}`; question_type is the paper's group
  (`causal` for C*, `temporal` for T*, `descriptive` for D*), the raw code is kept in
  `question_subtype` (CW, CH, TN, TC, TP, DL, DC, DO).
* `star`: STAR `STAR_{train,val,test}.json`, a list of
  `{question_id, question, video_id, start, end, answer, choices: [{choice_id, choice}], ...}`.
  question_type is the question_id prefix (Interaction, Sequence, Prediction, Feasibility);
  `start`/`end` (seconds) are kept: a STAR question is about that clip of the video, so each
  question reads its own feature row, `feature_id` = question_id (extract them with
  `mist extract-features VIDEOS --clips train.jsonl`). Questions without an answer (the hidden test
  labels) are skipped.
* `agqa`: AGQA 2.0 balanced `train_balanced.txt` / `test_balanced.txt` (JSON despite the name), a
  dict keyed by question id of `{question, answer, video_id, global: [...], local, ans_type,
  steps, semantic, structural, ...}`. question_type is the `global` list (the paper's reasoning
  categories: obj-rel, rel-act, obj-act, superlative, sequencing, exists, duration-comparison,
  activity-recognition); `semantic`, `structural` and `ans_type` are kept.
* `envqa`: Env-QA `{train,val,test}_full_question.json`, a list of
  `{question_id, video_id, question, answer, ...}` (assumed from the Env-QA release and its
  evaluation code; a `question_type` or `type` field is used when present). Answers of the form
  "yes, it is" / "no, it hasn't" are shortened to "yes" / "no"; questions or answers that are
  empty are skipped.
"""

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from processing.file_utils import write_atomically, write_text_atomically

SPLIT_ALIASES = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "dev": "validation",
    "validation": "validation",
    "test": "test",
}
NEXTQA_GROUPS = {"C": "causal", "T": "temporal", "D": "descriptive"}
ENVQA_YES_NO = {"yes, it is": "yes", "yes, it has": "yes", "no, it isn't": "no", "no, it hasn't": "no"}


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


def split_from_filename(path: Path) -> str:
    """`train.csv` -> train, `STAR_val.json` -> validation, `test_balanced.txt` -> test."""
    for token in re.split(r"[^a-z]+", path.stem.lower()):
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    raise ValueError(
        f"cannot tell the split of {str(path)!r} from its name (expected train, val/validation or test in it); "
        "pass --split"
    )


def _clean(text) -> str:
    return " ".join(str(text).split()) if text is not None else ""


# --- NExT-QA ---------------------------------------------------------------------------------------


def read_nextqa(path: Path, report: ConversionReport) -> Iterator[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            report.read += 1
            choices = [_clean(row.get(f"a{i}")) for i in range(5)]
            question = _clean(row.get("question"))
            try:
                answer_index = int(row["answer"])
            except (KeyError, TypeError, ValueError):
                report.skip("answer is not a candidate index")
                continue
            if not 0 <= answer_index < len(choices) or not question:
                report.skip("answer index out of range or empty question")
                continue
            code = _clean(row.get("type")).upper()
            yield {
                "question_id": f"{row['video']}_{row['qid']}",
                "video_id": str(row["video"]),
                "question": question,
                "answer": choices[answer_index],
                "choices": choices,
                "question_type": NEXTQA_GROUPS.get(code[:1], code.lower() or "unknown"),
                "question_subtype": code,
            }


# --- STAR ------------------------------------------------------------------------------------------


def read_star(path: Path, report: ConversionReport) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        records = json.load(handle)
    for record in records:
        report.read += 1
        choices = [_clean(choice["choice"]) for choice in sorted(record.get("choices", []), key=_choice_order)]
        answer = _clean(record.get("answer"))
        if not answer:
            report.skip("no answer (hidden test labels)")
            continue
        if answer not in choices:
            report.skip("answer not among the choices")
            continue
        question_id = str(record["question_id"])
        yield {
            "question_id": question_id,
            "video_id": str(record["video_id"]),
            "feature_id": question_id,  # each STAR question asks about its own clip: its own feature row
            "question": _clean(record["question"]),
            "answer": answer,
            "choices": choices,
            "question_type": question_id.split("_")[0],
            "start": float(record["start"]) if record.get("start") is not None else None,
            "end": float(record["end"]) if record.get("end") is not None else None,
        }


def _choice_order(choice: dict):
    return int(choice.get("choice_id", 0))


# --- AGQA 2.0 --------------------------------------------------------------------------------------


def read_agqa(path: Path, report: ConversionReport) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        records = json.load(handle)
    if not isinstance(records, dict):
        raise AnnotationFileError(
            f"{path}: AGQA questions are a JSON object keyed by question id, got {type(records).__name__}"
        )
    for question_id, record in records.items():
        report.read += 1
        question, answer = _clean(record.get("question")), _clean(record.get("answer"))
        if not question or not answer:
            report.skip("empty question or answer")
            continue
        global_types = record.get("global") or []
        yield {
            "question_id": str(question_id),
            "video_id": str(record["video_id"]),
            "question": question,
            "answer": answer,
            "question_type": [str(kind) for kind in global_types]
            if isinstance(global_types, list)
            else [str(global_types)],
            "semantic": record.get("semantic"),
            "structural": record.get("structural"),
            "ans_type": record.get("ans_type"),
        }


# --- Env-QA ----------------------------------------------------------------------------------------


def read_envqa(path: Path, report: ConversionReport) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        records = json.load(handle)
    if isinstance(records, dict):  # tolerate an object keyed by question id
        records = [{"question_id": key, **value} for key, value in records.items()]
    for record in records:
        report.read += 1
        question, answer = _clean(record.get("question")), _clean(record.get("answer"))
        if not question or not answer:
            report.skip("empty question or answer")
            continue
        answer = ENVQA_YES_NO.get(answer.lower(), answer)
        converted = {
            "question_id": str(record["question_id"]),
            "video_id": str(record["video_id"]),
            "question": question,
            "answer": answer,
        }
        question_type = record.get("question_type", record.get("type"))
        if question_type is not None:
            converted["question_type"] = str(question_type)
        yield converted


READERS = {"nextqa": read_nextqa, "star": read_star, "agqa": read_agqa, "envqa": read_envqa}


def convert(
    dataset_format: str, inputs: list[str | Path], output_dir: str | Path, split: str | None = None
) -> dict[str, ConversionReport]:
    """Convert annotation files; returns one report per written split."""
    if dataset_format not in READERS:
        raise ValueError(f"unknown format {dataset_format!r}; expected one of {', '.join(READERS)}")
    if split is not None and len(inputs) != 1:
        raise ValueError(f"--split names the split of a single input; got {len(inputs)} inputs")
    missing = [str(path) for path in inputs if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"no such annotation file: {', '.join(missing)}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    grouped: dict[str, list[Path]] = {}
    for path in map(Path, inputs):
        name = SPLIT_ALIASES.get(split, split) if split else split_from_filename(path)
        grouped.setdefault(name, []).append(path)

    reports = {}
    for name, paths in grouped.items():
        report = ConversionReport()
        # Each split file is written under a temporary name and renamed: a kill leaves the earlier file whole.
        write_atomically(
            str(output_dir / f"{name}.jsonl"), lambda temporary: _write_split(temporary, dataset_format, paths, report)
        )
        reports[name] = report
    summary = {name: report.as_dict() for name, report in reports.items()}
    record = {"format": dataset_format, "inputs": [str(p) for p in inputs], "splits": summary}
    write_text_atomically(str(output_dir / "conversion_report.json"), json.dumps(record, indent=2))
    return reports


def _write_split(target: str, dataset_format: str, paths: list[Path], report: ConversionReport) -> None:
    seen = set()
    with open(target, "w", encoding="utf-8") as out:
        for path in paths:
            try:
                for record in READERS[dataset_format](path, report):
                    if record["question_id"] in seen:
                        report.skip("duplicate question_id")
                        continue
                    seen.add(record["question_id"])
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    report.written += 1
            except (KeyError, TypeError, AttributeError, csv.Error, json.JSONDecodeError, UnicodeDecodeError) as error:
                detail = f"missing field {error}" if isinstance(error, KeyError) else f"{type(error).__name__}: {error}"
                raise AnnotationFileError(f"{path}: not a {dataset_format} annotation file ({detail})") from error
