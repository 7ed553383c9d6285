"""Converters from the published annotation formats, each on a small hand-written sample."""

import json
from pathlib import Path

import pytest

from processing.prepare_dataset import convert, split_from_filename
from training.cli.prepare_dataset import main

NEXTQA_CSV = """video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4
4010069381,1101,640,480,why did the boy pick up the ball,2,4,CW,to eat it,to sleep,to throw it,to hide,to wash it
4010069381,1101,640,480,what does the girl do after the dog runs,0,7,TN,chase the dog,sit down,cry,sing,jump
7771128765,2500,640,360,how many people are there,3,1,DC,one,two,three,four,five
7771128765,2500,640,360,where is this,9,2,DL,park,beach,room,road,field
"""

STAR_JSON = [
    {
        "question_id": "Interaction_T1_13",
        "question": "Which object was tidied up by the person?",
        "video_id": "6H78U",
        "start": 11.1,
        "end": 19.6,
        "answer": "The closet/cabinet.",
        "question_program": [{"function": "Situations", "value_input": []}],
        "choices": [
            {"choice_id": 1, "choice": "The blanket.", "choice_program": []},
            {"choice_id": 0, "choice": "The closet/cabinet.", "choice_program": []},
            {"choice_id": 2, "choice": "The clothes.", "choice_program": []},
            {"choice_id": 3, "choice": "The table.", "choice_program": []},
        ],
        "situations": {},
    },
    {
        "question_id": "Sequence_T3_42",
        "question": "What did the person do after holding the cup?",
        "video_id": "ZZ3KE",
        "start": 0.0,
        "end": 8.5,
        "answer": "Opened the door.",
        "choices": [
            {"choice_id": 0, "choice": "Put down the cup."},
            {"choice_id": 1, "choice": "Took the book."},
            {"choice_id": 2, "choice": "Sat on the sofa."},
            {"choice_id": 3, "choice": "Closed the box."},
        ],
    },
]

AGQA_JSON = {
    "q0001": {
        "question": "Did they contact a blanket?",
        "answer": "No",
        "video_id": "YSKX3",
        "global": ["exists", "obj-rel"],
        "local": "yes-no-o4",
        "ans_type": "binary",
        "steps": 1,
        "semantic": "object",
        "structural": "verify",
        "novel_comp": 0,
        "more_steps": 0,
        "program": "Exists(blanket, Iterate(video, ...))",
    },
    "q0002": {
        "question": "What did they hold before opening the closet?",
        "answer": "phone",
        "video_id": "AB12C",
        "global": ["sequencing", "obj-rel"],
        "local": "what-hold-before",
        "ans_type": "open",
        "steps": 3,
        "semantic": "object",
        "structural": "query",
    },
    "q0003": {"question": "", "answer": "table", "video_id": "AB12C", "global": ["obj-rel"]},
}

ENVQA_JSON = [
    {"question_id": "env_0", "video_id": "FloorPlan1_01", "question": "Is the fridge open?", "answer": "yes, it is"},
    {
        "question_id": "env_1",
        "video_id": "FloorPlan1_01",
        "question": "What did the agent pick up first?",
        "answer": "apple",
        "question_type": "order",
    },
    {"question_id": "env_2", "video_id": "FloorPlan2_03", "question": "", "answer": "cup"},
]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_split_names_from_files():
    assert split_from_filename(Path("train.csv")) == "train"
    assert split_from_filename(Path("STAR_val.json")) == "validation"
    assert split_from_filename(Path("test_balanced.txt")) == "test"
    assert split_from_filename(Path("val_full_question.json")) == "validation"
    with pytest.raises(ValueError, match="--split"):
        split_from_filename(Path("annotations.json"))


def test_nextqa(tmp_path):
    (tmp_path / "val.csv").write_text(NEXTQA_CSV)
    reports = convert("nextqa", [tmp_path / "val.csv"], tmp_path / "out")
    rows = read_jsonl(tmp_path / "out" / "validation.jsonl")
    assert reports["validation"].as_dict() == {
        "read": 4,
        "written": 3,
        "skipped": {"answer index out of range or empty question": 1},
    }
    assert rows[0] == {
        "question_id": "4010069381_4",
        "video_id": "4010069381",
        "question": "why did the boy pick up the ball",
        "answer": "to throw it",
        "choices": ["to eat it", "to sleep", "to throw it", "to hide", "to wash it"],
        "question_type": "causal",
        "question_subtype": "CW",
    }
    assert [row["question_type"] for row in rows] == ["causal", "temporal", "descriptive"]
    assert rows[2]["answer"] == "four"


def test_star(tmp_path):
    (tmp_path / "STAR_train.json").write_text(json.dumps(STAR_JSON))
    reports = convert("star", [tmp_path / "STAR_train.json"], tmp_path / "out")
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert reports["train"].written == 1
    assert reports["train"].skipped == {"answer not among the choices": 1}
    assert rows == [
        {
            "question_id": "Interaction_T1_13",
            "video_id": "6H78U",
            "feature_id": "Interaction_T1_13",  # each STAR question reads its own clip's features
            "question": "Which object was tidied up by the person?",
            "answer": "The closet/cabinet.",
            # ordered by choice_id, whatever the file order
            "choices": ["The closet/cabinet.", "The blanket.", "The clothes.", "The table."],
            "question_type": "Interaction",
            "start": 11.1,
            "end": 19.6,
        }
    ]


def test_agqa(tmp_path):
    (tmp_path / "test_balanced.txt").write_text(json.dumps(AGQA_JSON))
    reports = convert("agqa", [tmp_path / "test_balanced.txt"], tmp_path / "out")
    rows = read_jsonl(tmp_path / "out" / "test.jsonl")
    assert reports["test"].as_dict() == {"read": 3, "written": 2, "skipped": {"empty question or answer": 1}}
    assert rows[0] == {
        "question_id": "q0001",
        "video_id": "YSKX3",
        "question": "Did they contact a blanket?",
        "answer": "No",
        "question_type": ["exists", "obj-rel"],
        "semantic": "object",
        "structural": "verify",
        "ans_type": "binary",
    }
    assert rows[1]["question_type"] == ["sequencing", "obj-rel"]


def test_envqa(tmp_path):
    (tmp_path / "train_full_question.json").write_text(json.dumps(ENVQA_JSON))
    convert("envqa", [tmp_path / "train_full_question.json"], tmp_path / "out")
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert rows == [
        {"question_id": "env_0", "video_id": "FloorPlan1_01", "question": "Is the fridge open?", "answer": "yes"},
        {
            "question_id": "env_1",
            "video_id": "FloorPlan1_01",
            "question": "What did the agent pick up first?",
            "answer": "apple",
            "question_type": "order",
        },
    ]


def test_command_line_writes_splits_that_load_dataset_reads(tmp_path, capsys):
    from datasets import load_dataset

    (tmp_path / "train.csv").write_text(NEXTQA_CSV)
    (tmp_path / "test.csv").write_text(NEXTQA_CSV)
    out = tmp_path / "nextqa"
    assert (
        main(["--format", "nextqa", str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), "--output-dir", str(out)])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["train"]["written"] == 3 and summary["test"]["written"] == 3
    assert json.loads((out / "conversion_report.json").read_text())["format"] == "nextqa"
    loaded = load_dataset(str(out))
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"].column_names[:4] == ["question_id", "video_id", "question", "answer"]
    assert loaded["train"][0]["choices"][2] == "to throw it"


def test_command_line_reports_bad_input(tmp_path, capsys):
    (tmp_path / "questions.json").write_text("[]")
    assert main(["--format", "star", str(tmp_path / "questions.json"), "--output-dir", str(tmp_path / "o")]) == 1
    assert "--split" in capsys.readouterr().err


def test_missing_and_broken_inputs_are_one_line_and_keep_the_earlier_output(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--format", "nextqa", str(tmp_path / "train.csv"), "--output-dir", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"mist prepare-dataset: no such annotation file: {tmp_path / 'train.csv'}"

    (tmp_path / "val.csv").write_text(NEXTQA_CSV)
    assert main(["--format", "nextqa", str(tmp_path / "val.csv"), "--output-dir", str(out)]) == 0
    converted = (out / "validation.jsonl").read_text()
    broken = tmp_path / "broken" / "val.csv"
    broken.parent.mkdir()
    broken.write_text(NEXTQA_CSV.replace("video,frame_count", "clip,frame_count"))  # a renamed column
    capsys.readouterr()
    assert main(["--format", "nextqa", str(broken), "--output-dir", str(out)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"mist prepare-dataset: {broken}: not a nextqa annotation file (missing field 'video')"
    )
    assert (out / "validation.jsonl").read_text() == converted  # the failed run left the earlier file whole
    assert sorted(path.name for path in out.iterdir()) == ["conversion_report.json", "validation.jsonl"]


def test_formats_are_recognised_from_their_columns():
    from processing.question_formats import detect_format

    assert detect_format({"video", "qid", "question", "answer", "a0", "type"}, "x") == "nextqa"
    assert detect_format({"video", "qid", "question", "answer", "additional_ref_answer"}, "x") == "nextqa"
    assert detect_format({"question_idx", "question", "video_idx", "option", "answer"}, "x") == "egoschema"
    assert detect_format({"video_name", "question_id", "question", "answer", "type"}, "x") == "activitynetqa"
    assert detect_format(set(STAR_JSON[0]), "x") == "star"
    assert detect_format({"question_id", *AGQA_JSON["q0001"]}, "x") == "agqa"
    assert detect_format(set(ENVQA_JSON[1]), "x") == "envqa"
    with pytest.raises(ValueError, match=r"x: cannot tell the format from its columns \['clip', 'text'\]"):
        detect_format({"clip", "text"}, "x")


def test_star_choices_as_datasets_hands_them_over_and_a_hub_id_is_downloaded(tmp_path, monkeypatch):
    from processing.question_formats import star

    record = {**STAR_JSON[0], "video": "Charades_v1_480/6H78U.mp4"}
    record["choices"] = {"choice": ["The blanket.", "The closet/cabinet."], "choice_id": [1, 0]}  # a dict of lists
    assert star(record)["choices"] == ["The closet/cabinet.", "The blanket."]

    snapshot = tmp_path / "snapshot"
    (snapshot / "data").mkdir(parents=True)
    (snapshot / "data" / "train.json").write_text(json.dumps(STAR_JSON))
    asked = {}

    def snapshot_download(**kwargs):
        asked.update(kwargs)
        return str(snapshot)

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    reports = convert(None, ["zechen-nlp/star_bench"], tmp_path / "out")
    assert reports["train"].written == 1
    assert asked["repo_type"] == "dataset" and not any(".zip" in pattern for pattern in asked["allow_patterns"])


def test_activitynetqa_release_files_join_questions_and_answers(tmp_path):
    questions = [{"question": "is it sunny", "question_id": "v_abc_0", "video_name": "abc"},
                 {"question": "what sport", "question_id": "v_abc_1", "video_name": "abc"}]  # fmt: skip
    answers = [{"answer": "yes", "question_id": "v_abc_0", "type": 7}, {"answer": "", "question_id": "v_abc_1", "type": 0}]
    (tmp_path / "train_q.json").write_text(json.dumps(questions))
    (tmp_path / "train_a.json").write_text(json.dumps(answers))
    inputs = [tmp_path / "train_q.json", tmp_path / "train_a.json"]  # the answers file is read with its questions
    reports = convert(None, inputs, tmp_path / "out")
    assert reports["train"].as_dict() == {"read": 2, "written": 1, "skipped": {"empty question or answer": 1}}
    assert read_jsonl(tmp_path / "out" / "train.jsonl") == [
        {"question_id": "v_abc_0", "video_id": "v_abc", "question": "is it sunny", "answer": "yes", "question_type": "7"}
    ]
