"""Question/feature join: lazy feature rows, labels, and questions that cannot be used counted, not fatal."""

import json

import numpy as np
import pytest
from datasets import Array2D, Array3D, Dataset, Features, Value

from training.data import (
    MistQuestionDataset,
    VideoFeatureStore,
    build_answer_vocabulary,
    get_split,
    load_features,
    load_questions,
    read_answer_vocabulary,
)

FRAMES, PATCHES, WIDTH = 8, 4, 16


def write_features(folder, video_ids):
    rng = np.random.default_rng(0)
    features = Features(
        {
            "video_id": Value("string"),
            "frame_features": Array2D((FRAMES, WIDTH), "float16"),
            "patch_features": Array3D((FRAMES, PATCHES, WIDTH), "float16"),
        }
    )
    rows = {
        "video_id": list(video_ids),
        "frame_features": [rng.standard_normal((FRAMES, WIDTH)).astype(np.float16) for _ in video_ids],
        "patch_features": [rng.standard_normal((FRAMES, PATCHES, WIDTH)).astype(np.float16) for _ in video_ids],
    }
    Dataset.from_dict(rows, features=features).save_to_disk(str(folder))
    return rows


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def question(qid, video, answer, **extra):
    return {"question_id": qid, "video_id": video, "question": f"what about {video}?", "answer": answer, **extra}


@pytest.fixture
def open_ended(tmp_path):
    rows = write_features(tmp_path / "features", ["v0", "v1", "v2"])
    folder = tmp_path / "questions"
    folder.mkdir()
    write_jsonl(
        folder / "train.jsonl", [question("a", "v0", "cup"), question("b", "v1", "box"), question("c", "v2", "cup")]
    )
    write_jsonl(
        folder / "validation.jsonl",
        [
            question("d", "v0", "box"),
            question("e", "missing", "cup"),
            question("f", "v2", "a dog"),
        ],  # no video, new answer
    )
    return folder, tmp_path / "features", rows


def test_splits_load_from_a_jsonl_folder_and_vocabulary_is_by_frequency(open_ended):
    folder, _, _ = open_ended
    splits = load_questions(str(folder))
    assert sorted(splits) == ["train", "validation"]
    assert get_split(splits, "val", str(folder)) is splits["validation"]
    assert build_answer_vocabulary(splits["train"]) == ["cup", "box"]
    with pytest.raises(ValueError, match="no split 'test'"):
        get_split(splits, "test", str(folder))


def test_features_are_read_per_row_from_the_memory_mapped_dataset(open_ended):
    _, features_folder, rows = open_ended
    store = VideoFeatureStore(load_features(str(features_folder)))
    assert store.dataset.cache_files, "features must stay on disk (memory-mapped), not in RAM"
    assert store.row_of == {"v0": 0, "v1": 1, "v2": 2} and "missing" not in store
    frame_features, patch_features = store["v1"]
    np.testing.assert_array_equal(frame_features, rows["frame_features"][1].astype(np.float32))
    assert patch_features.shape == (FRAMES, PATCHES, WIDTH)


def test_unusable_questions_are_counted(open_ended):
    folder, features_folder, _ = open_ended
    splits = load_questions(str(folder))
    store = VideoFeatureStore(load_features(str(features_folder)))
    vocabulary = ["cup", "box"]

    train = MistQuestionDataset(splits["validation"], store, vocabulary, split="validation")  # training: drop
    assert train.labels == [1] and len(train) == 1
    assert train.report.as_dict() == {
        "split": "validation",
        "total": 3,
        "kept": 1,
        "missing_features": 1,
        "answer_not_in_vocabulary": 1,
        "answer_not_in_choices": 0,
        "kept_without_label": 0,
        "missing_video_examples": ["missing"],
    }
    evaluation = MistQuestionDataset(splits["validation"], store, vocabulary, keep_unlabeled=True, split="validation")
    assert evaluation.labels == [1, -100]  # the new answer stays, scored as wrong; the missing video cannot
    assert evaluation.column("question_id") == ["d", "f"]
    assert "1 without video features" in evaluation.report.summary()
    item = evaluation[1]
    assert item["labels"] == -100 and item["question"] == "what about v2?"
    assert item["patch_features"].shape == (FRAMES, PATCHES, WIDTH)


def test_multiple_choice_labels_are_choice_indices(tmp_path):
    write_features(tmp_path / "features", ["v0"])
    folder = tmp_path / "questions"
    folder.mkdir()
    write_jsonl(
        folder / "train.jsonl",
        [question("a", "v0", "no", choices=["yes", "no"]), question("b", "v0", "maybe", choices=["yes", "no"])],
    )
    questions = load_questions(str(folder))["train"]
    dataset = MistQuestionDataset(questions, VideoFeatureStore(load_features(str(tmp_path / "features"))))
    assert dataset.multiple_choice and dataset.labels == [1]
    assert dataset.report.answer_not_in_choices == 1
    assert dataset[0]["choices"] == ["yes", "no"]


def test_open_ended_needs_a_vocabulary_and_bad_datasets_are_named(tmp_path, open_ended):
    folder, features_folder, _ = open_ended
    with pytest.raises(ValueError, match="vocabulary"):
        MistQuestionDataset(
            load_questions(str(folder))["train"], VideoFeatureStore(load_features(str(features_folder)))
        )
    (tmp_path / "bad").mkdir()
    write_jsonl(tmp_path / "bad" / "train.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(ValueError, match="video_id"):
        load_questions(str(tmp_path / "bad"))


def test_answer_vocabulary_files(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps(["b", "a"]))
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 1, "b": 0}))  # the reference's answer -> index
    assert read_answer_vocabulary(str(tmp_path / "list.json")) == ["b", "a"]
    assert read_answer_vocabulary(str(tmp_path / "vocab.json")) == ["b", "a"]


def test_library_errors_name_the_path_and_the_command_adds_its_flag(tmp_path):
    from training.errors import UsageError, named_by

    with pytest.raises(UsageError) as raised:
        load_features("./no-such-features")
    assert str(raised.value) == "./no-such-features: no such file or folder"
    with pytest.raises(UsageError) as raised, named_by("--features"):
        load_features("./no-such-features")
    assert str(raised.value) == "--features ./no-such-features: no such file or folder"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError) as raised:
        load_questions(str(tmp_path / "empty"))
    assert str(raised.value).startswith(f"{tmp_path / 'empty'}: the folder holds no question files")
