"""The public Hub datasets as users get them: local folders laid out exactly like each Hub repository
(parquet per config and split with the published column types, the `configs:` YAML of README.md, the zipped
videos at their real member paths) go `mist prepare-dataset` -> `mist extract-features` -> `mist train` ->
`mist evaluate`, with every question of a present video used, and the CLIP recorded in the features used."""

import json
import zipfile
from pathlib import Path
from unittest.mock import patch

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_from_disk
from huggingface_hub import HfApi

from tests.training.training_testing import RecordingHub, write_video
from training.cli import main as mist

CHOICE = pa.struct([("choice", pa.string()), ("choice_id", pa.int64())])
TURN = pa.struct([("from", pa.string()), ("value", pa.string())])


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def write_readme(folder: Path, configs: dict[str, dict[str, str]]) -> None:
    """README.md with the `configs:` header the Hub's parquet conversion writes: config -> split -> path glob."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        for split, path in splits.items():
            lines += [f"  - split: {split}", f"    path: {path}"]
    (folder / "README.md").write_text("\n".join([*lines, "---", "", "# dataset card", ""]))


def write_videos_zip(path: Path, members: list[str], scratch: Path, extra: dict | None = None) -> None:
    """A stored zip, as the Hub repos ship their videos, of small real mp4s at `members`."""
    scratch.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index, member in enumerate(members):
            video = write_video(scratch / f"{index}-{Path(member).name}", num_frames=16 + index)
            archive.write(video, member)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)


NEXTQA_MC = pa.schema(
    [("video", pa.int64()), ("frame_count", pa.int64()), ("width", pa.int64()), ("height", pa.int64()),
     ("question", pa.string()), ("answer", pa.int64()), ("qid", pa.int64()), ("type", pa.string()),
     *[(f"a{index}", pa.string()) for index in range(5)]]
)  # fmt: skip
NEXTQA_OE = pa.schema(
    [("video", pa.int64()), ("frame_count", pa.int64()), ("width", pa.int64()), ("height", pa.int64()),
     ("question", pa.string()), ("answer", pa.string()), ("qid", pa.int64()), ("type", pa.string()),
     ("additional_ref_answer", pa.string())]
)  # fmt: skip
STAR = pa.schema(
    [("question_id", pa.string()), ("question", pa.string()), ("video_id", pa.string()), ("video", pa.string()),
     ("start", pa.float64()), ("end", pa.float64()), ("choices", pa.list_(CHOICE)), ("answer", pa.string()),
     ("conversations", pa.list_(TURN))]
)  # fmt: skip
EGOSCHEMA = pa.schema(
    [("question_idx", pa.string()), ("question", pa.string()), ("video_idx", pa.string()),
     ("option", pa.list_(pa.string())), ("answer", pa.string())]
)  # fmt: skip
ACTIVITYNETQA = pa.schema(
    [("video_name", pa.string()), ("question_id", pa.string()), ("question", pa.string()), ("answer", pa.string()),
     ("type", pa.string())]
)  # fmt: skip
NEXTQA_CSV_HEADER = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
VIDEOS = [4010069381, 7771128765, 5333075105]


def nextqa_mc_row(video: int, qid: int, answer: int) -> dict:
    choices = {f"a{index}": f"choice {index} of {video}" for index in range(5)}
    return dict(video=video, frame_count=100, width=64, height=48, question=f"what happens in {video} {qid}",
                answer=answer, qid=qid, type="CW" if qid % 2 else "TN", **choices)  # fmt: skip


def build_nextqa(root: Path) -> Path:
    """`lmms-eval/NExTQA` (MC test, OE train/validation/test, videos.zip) plus the GitHub CSVs (MC train/val)."""
    hub = root / "NExTQA"
    mc = [nextqa_mc_row(video, qid, qid % 5) for video in VIDEOS for qid in (0, 1)]
    write_parquet(hub / "MC" / "test-00000-of-00001.parquet", mc, NEXTQA_MC)
    for split in ("train", "validation", "test"):
        rows = [
            dict(video=video, frame_count=100, width=64, height=48, question=f"what is in {video} {qid}",
                 answer=["cup", "ball"][qid % 2], qid=qid, type="DO", additional_ref_answer="a cup")
            for video in VIDEOS for qid in (0, 1)
        ]  # fmt: skip
        write_parquet(hub / "OE" / f"{split}-00000-of-00001.parquet", rows, NEXTQA_OE)
    write_readme(hub, {"MC": {"test": "MC/test-*"}, "OE": {s: f"OE/{s}-*" for s in ("train", "validation", "test")}})
    write_videos_zip(hub / "videos.zip", [f"NExTVideo/{video}.mp4" for video in VIDEOS], root / "scratch-nextqa")
    github = root / "NExT-QA" / "dataset" / "nextqa"
    github.mkdir(parents=True)
    for name in ("train", "val"):
        lines = [
            ",".join(str(row[key]) for key in NEXTQA_MC.names) + "\n" for row in mc
        ]
        (github / f"{name}.csv").write_text(NEXTQA_CSV_HEADER + "".join(lines))
    return hub


def build_star(root: Path) -> Path:
    """`zechen-nlp/star_bench`: four configs with train/validation, `choices` a list of structs, charades.zip."""
    hub = root / "star_bench"
    videos = ["6H78U", "ZZ3KE"]
    configs = {}
    for kind in ("interaction", "sequence", "prediction", "feasibility"):
        for split in ("train", "validation"):
            rows = [
                dict(question_id=f"{kind.capitalize()}_T1_{split}_{video}", question=f"{kind} in {video}?",
                     video_id=video, video=f"Charades_v1_480/{video}.mp4", start=0.0, end=1.5,
                     choices=[{"choice": f"option {index}", "choice_id": index} for index in (2, 0, 1, 3)],
                     answer="option 1", conversations=[{"from": "human", "value": "?"}, {"from": "gpt", "value": "B"}])
                for video in videos
            ]  # fmt: skip
            write_parquet(hub / kind / f"{split}-00000-of-00001.parquet", rows, STAR)
        configs[kind] = {split: f"{kind}/{split}-*" for split in ("train", "validation")}
    write_readme(hub, configs)
    write_videos_zip(hub / "charades.zip", [f"Charades_v1_480/{video}.mp4" for video in videos], root / "scratch-star")
    return hub


def build_egoschema(root: Path) -> Path:
    """`lmms-eval/egoschema` config `Subset` (test, string answers "0".."4"), videos in chunked zips."""
    hub = root / "egoschema"
    videos = ["001934bb-81bd-4cd8-a574-0472ef3f6678", "00b9a0de-c59e-49cb-a127-6081e2fb8c8e", "0a01c6c1-3ca1"]
    rows = [
        dict(question_idx=video, question=f"what is c doing in {video[:4]}?", video_idx=video,
             option=[f"{letter}. c does thing {letter}" for letter in "ABCDE"], answer=str(index % 5))
        for index, video in enumerate(videos)
    ]  # fmt: skip
    rows.append(dict(question_idx="unlabelled", question="withheld?", video_idx=videos[0], option=["A. x"] * 5, answer=""))
    write_parquet(hub / "Subset" / "test-00000-of-00001.parquet", rows, EGOSCHEMA)
    write_readme(hub, {"Subset": {"test": "Subset/test-*"}})
    scratch = root / "scratch-egoschema"
    write_videos_zip(hub / "videos_chunked_01.zip", [f"videos/{video}.mp4" for video in videos[:2]], scratch)
    write_videos_zip(hub / "videos_chunked_02.zip", [f"videos/{videos[2]}.mp4"], scratch, {"videos/.DS_Store": b"x"})
    return hub


def build_activitynetqa(root: Path) -> Path:
    """`lmms-eval/ActivityNetQA` (test, all strings), videos `all_test/v_<video_name>.mp4` in chunked zips."""
    hub = root / "ActivityNetQA"
    videos = ["--1DO2V4K74", "-0hlkFrdYSI"]
    rows = [
        dict(video_name=video, question_id=f"v_{video}_{index}", question=f"is it sunny {index}?",
             answer=["yes", "no"][index % 2], type=str(index % 3))
        for video in videos for index in range(3)
    ]  # fmt: skip
    write_parquet(hub / "data" / "test-00000-of-00001.parquet", rows, ACTIVITYNETQA)
    write_readme(hub, {"default": {"test": "data/test-*"}})
    write_videos_zip(hub / "videos_chunked_01.zip", [f"all_test/v_{video}.mp4" for video in videos], root / "scratch-anet")
    return hub


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def extract(inputs: list[str], output: Path, clip_model_name: str, *extra: str) -> None:
    assert mist(["extract-features", *inputs, "--output-dir", str(output), "--preset", "tiny", "--crop-size", "224",
                 "--clip-model", clip_model_name, "--clip-pretrained", "none", "--no-progress", *extra]) == 0  # fmt: skip


def train_and_evaluate(questions: Path, features: Path, out: Path, text_encoder_dir, *extra: str) -> dict:
    code = mist(
        ["train", "--dataset", str(questions), "--features", str(features), "--output-dir", str(out), "--preset",
         "tiny", "--text-encoder", str(text_encoder_dir), "--config_overrides", "crop_size=224", "--max_steps", "2",
         "--disable_tqdm", "true", *extra]
    )  # fmt: skip
    assert code == 0
    saved = json.loads((out / "processor_config.json").read_text())
    saved = saved.get("video_processor", saved)
    settings = json.loads(load_from_disk(str(features)).info.description.split(": ", 1)[1])
    # one CLIP per model: the processor embeds questions with the CLIP recorded in the features (no --clip-model)
    assert (saved["clip_model_name"], saved["clip_pretrained"]) == (settings["clip_model_name"], None)
    reports = json.loads((out / "data_report.json").read_text())
    assert all(report["kept"] == report["total"] for report in reports), reports  # none lost: every video is there
    split = "test"
    assert mist(["evaluate", "--model", str(out), "--dataset", str(questions), "--features", str(features),
                 "--split", split, "--no-progress"]) == 0  # fmt: skip
    results = json.loads((out / "eval" / f"results_{split}.json").read_text())
    assert results["data"]["kept"] == results["data"]["total"]
    return results


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory):
    return tmp_path_factory.mktemp("hub")


def test_nextqa_multiple_choice_from_github_csvs_and_the_hub_mc_config(
    hub_root, tmp_path, clip_model_name, text_encoder_dir, capsys
):
    hub = build_nextqa(hub_root)
    questions = tmp_path / "nextqa"
    github = hub_root / "NExT-QA" / "dataset" / "nextqa"
    assert mist(["prepare-dataset", str(github / "train.csv"), str(github / "val.csv"), "--output-dir", str(questions)]) == 0
    assert mist(["prepare-dataset", str(hub), "--output-dir", str(questions)]) == 1  # MC and OE differ
    assert capsys.readouterr().err.strip().endswith(f"{hub}: its configs MC, OE hold different questions (other columns); pass --config")
    assert mist(["prepare-dataset", str(hub), "--config", "MC", "--output-dir", str(questions)]) == 0
    test = read_jsonl(questions / "test.jsonl")
    assert len(test) == 6 and test[1] == {
        "question_id": "4010069381_1",
        "video_id": "4010069381",  # the stem of NExTVideo/4010069381.mp4
        "question": "what happens in 4010069381 1",
        "answer": "choice 1 of 4010069381",
        "choices": [f"choice {index} of 4010069381" for index in range(5)],
        "question_type": "causal",
        "question_subtype": "CW",
    }
    report = json.loads((questions / "conversion_report.json").read_text())
    assert sorted(report["splits"]) == ["test", "train", "validation"]  # the CSV splits are kept beside MC's test
    assert report["splits"]["test"]["format"] == "nextqa" and report["splits"]["test"]["config"] == "MC"

    features = tmp_path / "features"
    extract([str(hub / "videos.zip")], features, clip_model_name)
    results = train_and_evaluate(questions, features, tmp_path / "model", text_encoder_dir)
    assert results["data"]["kept"] == 6


def test_nextqa_open_ended_from_the_hub_oe_config(hub_root, tmp_path, clip_model_name, text_encoder_dir):
    hub = hub_root / "NExTQA"
    if not hub.exists():
        build_nextqa(hub_root)
    questions = tmp_path / "nextqa-oe"
    assert mist(["prepare-dataset", str(hub), "--config", "OE", "--output-dir", str(questions)]) == 0
    train = read_jsonl(questions / "train.jsonl")
    assert train[0]["answer"] == "cup" and "choices" not in train[0] and train[0]["additional_ref_answer"] == "a cup"
    features = tmp_path / "features"
    extract([str(hub)], features, clip_model_name)  # the Hub folder: every archive in it
    assert train_and_evaluate(questions, features, tmp_path / "model", text_encoder_dir)["data"]["kept"] == 6


def test_star_hub_configs_with_one_clip_per_question(hub_root, tmp_path, clip_model_name, text_encoder_dir):
    hub = build_star(hub_root)
    questions = tmp_path / "star"
    assert mist(["prepare-dataset", str(hub), "--output-dir", str(questions)]) == 0  # all four configs
    train = read_jsonl(questions / "train.jsonl")
    assert len(train) == 8 and sorted({row["question_type"] for row in train}) == [
        "Feasibility", "Interaction", "Prediction", "Sequence"
    ]  # fmt: skip
    assert train[0]["video_id"] == "6H78U" and train[0]["choices"] == ["option 0", "option 1", "option 2", "option 3"]
    features = tmp_path / "features"
    extract([str(hub / "charades.zip")], features, clip_model_name, "--clips", str(questions / "train.jsonl"))
    extract([str(hub / "charades.zip")], features, clip_model_name, "--clips", str(questions / "validation.jsonl"))
    out = tmp_path / "model"
    code = mist(
        ["train", "--dataset", str(questions), "--features", str(features), "--output-dir", str(out), "--preset",
         "tiny", "--text-encoder", str(text_encoder_dir), "--config_overrides", "crop_size=224", "--max_steps", "2",
         "--disable_tqdm", "true", "--test_split", "validation"]
    )  # fmt: skip
    assert code == 0
    assert all(report["kept"] == report["total"] == 8 for report in json.loads((out / "data_report.json").read_text()))


def test_egoschema_and_activitynetqa_from_chunked_archives(hub_root, tmp_path, clip_model_name, text_encoder_dir, capsys):
    egoschema = build_egoschema(hub_root)
    questions = tmp_path / "egoschema"
    assert mist(["prepare-dataset", str(egoschema), "--output-dir", str(questions)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["test"] == {"read": 4, "written": 3, "skipped": {"no answer (labels withheld)": 1}}
    test = read_jsonl(questions / "test.jsonl")
    assert test[1]["choices"][:2] == ["c does thing A", "c does thing B"] and test[1]["answer"] == "c does thing B"
    features = tmp_path / "egoschema-features"
    extract([str(egoschema / "videos_chunked_*.zip")], features, clip_model_name)
    assert "skipped 1 archive members that are not videos" in capsys.readouterr().out
    train_split = ["--train_split", "test", "--eval_split", "none"]  # EgoSchema publishes test questions only
    assert train_and_evaluate(questions, features, tmp_path / "ego-model", text_encoder_dir, *train_split)[
        "data"
    ]["kept"] == 3

    anet = build_activitynetqa(hub_root)
    questions = tmp_path / "activitynetqa"
    assert mist(["prepare-dataset", str(anet), "--output-dir", str(questions)]) == 0
    assert read_jsonl(questions / "test.jsonl")[0]["video_id"] == "v_--1DO2V4K74"  # all_test/v_--1DO2V4K74.mp4
    features = tmp_path / "anet-features"
    extract([str(anet)], features, clip_model_name)
    results = train_and_evaluate(questions, features, tmp_path / "anet-model", text_encoder_dir, *train_split)
    assert results["data"]["kept"] == 6


def test_a_clip_that_disagrees_with_the_features_is_refused(hub_root, tmp_path, clip_model_name, text_encoder_dir, capsys):
    anet = hub_root / "ActivityNetQA"
    if not anet.exists():
        build_activitynetqa(hub_root)
    questions, features = tmp_path / "questions", tmp_path / "features"
    assert mist(["prepare-dataset", str(anet), "--output-dir", str(questions)]) == 0
    extract([str(anet / "videos_chunked_01.zip")], features, clip_model_name)
    capsys.readouterr()
    code = mist(["train", "--dataset", str(questions), "--features", str(features), "--output-dir", str(tmp_path / "o"),
                 "--preset", "tiny", "--train_split", "test", "--clip_model", "ViT-B-16"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"mist train: --features {features}: the features were made with CLIP {clip_model_name} with random weights, "
        "but --clip-model / --clip-pretrained asks for ViT-B-16 with random weights; question embeddings must come "
        "from the CLIP that made the features: leave the CLIP choice out, or extract the features again with that CLIP"
    )


def test_push_to_hub_uploads_questions_and_features_with_dataset_cards(hub_root, tmp_path, clip_model_name, capsys):
    anet = hub_root / "ActivityNetQA"
    if not anet.exists():
        build_activitynetqa(hub_root)
    hub = RecordingHub()
    questions, features = tmp_path / "questions", tmp_path / "features"
    with (
        patch.object(HfApi, "create_repo", autospec=True, side_effect=hub.create_repo),
        patch.object(HfApi, "upload_folder", autospec=True, side_effect=hub.upload_folder),
    ):
        assert mist(["prepare-dataset", str(anet), "--output-dir", str(questions), "--push-to-hub", "someone/anet-qa"]) == 0
        extract([str(anet)], features, clip_model_name, "--push-to-hub", "someone/anet-features", "--private")
    assert [(call["repo_id"], call["repo_type"], call["private"]) for call in hub.created] == [
        ("someone/anet-qa", "dataset", False), ("someone/anet-features", "dataset", True)
    ]  # fmt: skip
    card = hub.uploads[0]["files"]["README.md"].decode()
    assert "license: other" in card and "- split: test\n    path: test.jsonl" in card
    assert "| test | 6 | 6 | - | activitynetqa |" in card and "keep the license and terms of use" in card
    files = hub.uploads[1]["files"]
    assert sorted(files) == ["README.md", "data/train-00000-of-00001.parquet", "extraction_settings.json"]
    settings = json.loads(files["extraction_settings.json"])
    assert settings["clip_model_name"] == clip_model_name and settings["num_frames"] == 8
    card = files["README.md"].decode()
    for row in (f"| CLIP model | {clip_model_name} |", "| weights | random (none) |", "| frames per video | 8 |",
                "| grid | 2 x 2 crops |", "| crop size | 224 px |", "| videos | 2 |"):  # fmt: skip
        assert row in card
    parquet = tmp_path / "uploaded.parquet"
    parquet.write_bytes(files["data/train-00000-of-00001.parquet"])
    assert pq.read_table(parquet).column("video_id").to_pylist() == ["v_--1DO2V4K74", "v_-0hlkFrdYSI"]
