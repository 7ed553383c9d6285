"""The published question formats, one record at a time, into this project's schema (`mist prepare-dataset`).

Each converter takes one record (a CSV row, a JSON object, a parquet row) and returns the question
in the schema of `processing.prepare_dataset`, or raises `Skip(reason)` for a question that cannot
be used. `video_id` is always the stem of the video file inside the dataset's own archives, so the
questions join the features `mist extract-features ARCHIVES` writes with no renaming.

* `nextqa`: NExT-QA. Multiple choice (the GitHub `train/val/test.csv` and the Hub's `MC` config):
  `video, qid, question, type, a0..a4, answer` (the right candidate's index). Open-ended (the Hub's
  `OE` config): `answer` is the text, `additional_ref_answer` is kept. question_id = `{video}_{qid}`;
  question_type is the paper's group (`causal` C*, `temporal` T*, `descriptive` D*), the code is kept
  in `question_subtype`. Videos: `NExTVideo/<video>.mp4`.
* `star`: STAR, the official `STAR_{train,val,test}.json` and the Hub's configs (`interaction`,
  `sequence`, `prediction`, `feasibility`): `question_id, question, video_id, start, end, answer`
  (the right choice's text), `choices` (a list of `{choice_id, choice}`, or from `datasets` a dict of
  lists). Each question asks about its clip `start`..`end` (seconds): `feature_id` = question_id
  (extract with `mist extract-features VIDEOS --clips train.jsonl`). question_type is the
  question_id prefix. Videos: `Charades_v1_480/<video_id>.mp4`.
* `egoschema`: EgoSchema (`lmms-eval/egoschema`): `question_idx, question, video_idx, option`
  (`"A. ..."` x 5) and `answer` (the index as a digit); questions without a label (the withheld
  ones) are skipped. Videos: `videos/<video_idx>.mp4`.
* `activitynetqa`: ActivityNet-QA (`lmms-eval/ActivityNetQA`): `video_name, question_id, question,
  answer, type`, open-ended. Videos: `all_test/v_<video_name>.mp4`, so video_id = `v_<video_name>`.
* `agqa`: AGQA 2.0 balanced `train_balanced.txt` / `test_balanced.txt` (JSON keyed by question id):
  question_type is the `global` list; `semantic`, `structural` and `ans_type` are kept.
* `envqa`: Env-QA `{train,val,test}_full_question.json` (assumed from its release and evaluation
  code): "yes, it is" / "no, it hasn't" answers become "yes" / "no"; `question_type` or `type` is kept.
"""

import os
import re
from collections.abc import Callable

NEXTQA_GROUPS = {"C": "causal", "T": "temporal", "D": "descriptive"}
ENVQA_YES_NO = {"yes, it is": "yes", "yes, it has": "yes", "no, it isn't": "no", "no, it hasn't": "no"}
OPTION_LETTER = re.compile(r"^\s*\(?[A-Ea-e][.):]\s+")  # EgoSchema's "A. " in front of each option


class Skip(Exception):
    """A question that cannot be used; the message is the reason counted in the conversion report."""


def clean(text) -> str:
    return " ".join(str(text).split()) if text is not None else ""


def video_stem(path: str) -> str:
    """`Charades_v1_480/6H78U.mp4` -> `6H78U`: the id `mist extract-features` gives that archive member."""
    return os.path.splitext(os.path.basename(str(path)))[0]


def nextqa(record: dict) -> dict:
    question = clean(record.get("question"))
    code = clean(record.get("type")).upper()
    converted = {"question_id": f"{record['video']}_{record['qid']}", "video_id": str(record["video"])}
    if "a0" in record:  # multiple choice: the answer is the index of the right candidate
        choices = [clean(record.get(f"a{index}")) for index in range(5)]
        try:
            answer_index = int(record["answer"])
        except (KeyError, TypeError, ValueError):
            raise Skip("answer is not a candidate index") from None
        if not 0 <= answer_index < len(choices) or not question:
            raise Skip("answer index out of range or empty question")
        converted.update(question=question, answer=choices[answer_index], choices=choices)
    else:
        answer = clean(record.get("answer"))
        if not question or not answer:
            raise Skip("empty question or answer")
        converted.update(question=question, answer=answer)
    converted.update(question_type=NEXTQA_GROUPS.get(code[:1], code.lower() or "unknown"), question_subtype=code)
    if record.get("additional_ref_answer") not in (None, ""):
        converted["additional_ref_answer"] = clean(record["additional_ref_answer"])
    return converted


def star(record: dict) -> dict:
    choices = [clean(choice) for _, choice in sorted(_star_choices(record.get("choices")))]
    answer = clean(record.get("answer"))
    if not answer:
        raise Skip("no answer (hidden test labels)")
    if answer not in choices:
        raise Skip("answer not among the choices")
    question_id = str(record["question_id"])
    video = record.get("video")
    return {
        "question_id": question_id,
        "video_id": video_stem(video) if video else str(record["video_id"]),
        "feature_id": question_id,  # each STAR question asks about its own clip: its own feature row
        "question": clean(record["question"]),
        "answer": answer,
        "choices": choices,
        "question_type": question_id.split("_")[0],
        "start": float(record["start"]) if record.get("start") is not None else None,
        "end": float(record["end"]) if record.get("end") is not None else None,
    }


def _star_choices(choices) -> list[tuple[int, str]]:
    """(choice_id, text) pairs from a list of `{choice_id, choice}` or a dict of lists (how `datasets` gives it)."""
    if isinstance(choices, dict):
        texts = choices.get("choice", [])
        ids = choices.get("choice_id") or list(range(len(texts)))
        return [(int(choice_id), text) for choice_id, text in zip(ids, texts)]
    return [(int(choice.get("choice_id", 0)), choice["choice"]) for choice in choices or []]


def egoschema(record: dict) -> dict:
    choices = [OPTION_LETTER.sub("", clean(option), count=1) for option in record["option"]]
    question, answer = clean(record.get("question")), clean(record.get("answer"))
    if not answer:
        raise Skip("no answer (labels withheld)")
    if not answer.isdigit() or not 0 <= int(answer) < len(choices):
        raise Skip("answer is not an option index")
    if not question:
        raise Skip("empty question")
    return {
        "question_id": str(record["question_idx"]),
        "video_id": str(record["video_idx"]),
        "question": question,
        "answer": choices[int(answer)],
        "choices": choices,
    }


def activitynetqa(record: dict) -> dict:
    question, answer = clean(record.get("question")), clean(record.get("answer"))
    if not question or not answer:
        raise Skip("empty question or answer")
    name = str(record["video_name"])
    converted = {
        "question_id": str(record["question_id"]),
        "video_id": name if name.startswith("v_") else f"v_{name}",  # the archive's `all_test/v_<name>.mp4`
        "question": question,
        "answer": answer,
    }
    if record.get("type") not in (None, ""):
        converted["question_type"] = str(record["type"])
    return converted


def agqa(record: dict) -> dict:
    question, answer = clean(record.get("question")), clean(record.get("answer"))
    if not question or not answer:
        raise Skip("empty question or answer")
    global_types = record.get("global") or []
    return {
        "question_id": str(record["question_id"]),
        "video_id": str(record["video_id"]),
        "question": question,
        "answer": answer,
        "question_type": [str(kind) for kind in global_types] if isinstance(global_types, list) else [str(global_types)],
        "semantic": record.get("semantic"),
        "structural": record.get("structural"),
        "ans_type": record.get("ans_type"),
    }


def envqa(record: dict) -> dict:
    question, answer = clean(record.get("question")), clean(record.get("answer"))
    if not question or not answer:
        raise Skip("empty question or answer")
    converted = {
        "question_id": str(record["question_id"]),
        "video_id": str(record["video_id"]),
        "question": question,
        "answer": ENVQA_YES_NO.get(answer.lower(), answer),
    }
    question_type = record.get("question_type", record.get("type"))
    if question_type is not None:
        converted["question_type"] = str(question_type)
    return converted


CONVERTERS: dict[str, Callable[[dict], dict]] = {
    "nextqa": nextqa,
    "star": star,
    "egoschema": egoschema,
    "activitynetqa": activitynetqa,
    "agqa": agqa,
    "envqa": envqa,
}

# The columns that tell each format apart, checked in this order.
SIGNATURE_COLUMNS = (
    ("egoschema", {"question_idx", "video_idx", "option"}),
    ("activitynetqa", {"video_name", "question_id", "question", "answer"}),
    ("nextqa", {"video", "qid", "question", "answer"}),
    ("star", {"question_id", "video_id", "choices", "start", "end"}),
    ("agqa", {"question_id", "video_id", "global", "ans_type"}),
    ("envqa", {"question_id", "video_id", "question", "answer"}),
)


def detect_format(columns, source: str) -> str:
    """The format whose columns `columns` holds; ValueError naming them otherwise."""
    present = set(columns)
    for name, required in SIGNATURE_COLUMNS:
        if required <= present:
            return name
    raise ValueError(
        f"{source}: cannot tell the format from its columns {sorted(present)}; expected the columns of one of "
        f"{', '.join(CONVERTERS)}, or pass --format"
    )
