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


def test_model_loading_errors_name_the_path_or_device_without_a_flag(tmp_path):
    from training.errors import UsageError
    from training.factory import check_device, check_saved_model, load_trained

    with pytest.raises(UsageError) as raised:
        check_device("gpu")
    assert str(raised.value) == "gpu: not a device; expected cpu, cuda or cuda:N"
    (tmp_path / "runs").mkdir()
    with pytest.raises(UsageError) as raised:
        load_trained(str(tmp_path / "runs" / "mdoel"))
    assert str(raised.value) == (
        f"{tmp_path / 'runs' / 'mdoel'}: no such file or folder; {tmp_path / 'runs'}/ exists and holds: nothing"
    )
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(UsageError) as raised:
        check_saved_model(tmp_path / "weights.bin")
    assert str(raised.value) == (
        f"{tmp_path / 'weights.bin'}: a file; expected the model folder that `mist train --output-dir` writes"
    )


def test_the_clip_recorded_in_the_features_is_the_one_questions_are_embedded_with(caplog):
    from types import SimpleNamespace

    from training.data import check_processor_clip, clip_for_features
    from training.errors import UsageError

    record = {"clip_model_name": "ViT-B-32-quickgelu", "clip_pretrained": "openai", "num_frames": 32}
    assert clip_for_features(record, "f", None, None, "--clip-model") == {
        "clip_model_name": "ViT-B-32-quickgelu",
        "clip_pretrained": "openai",
    }
    assert clip_for_features(record, "f", "ViT-B-32-quickgelu", "openai", "--clip-model")["clip_pretrained"] == "openai"
    with pytest.raises(UsageError) as raised:
        clip_for_features(record, "feats", None, "none", "--clip-pretrained")
    assert str(raised.value).startswith(
        "feats: the features were made with CLIP ViT-B-32-quickgelu with weights openai, but --clip-pretrained asks "
        "for ViT-B-32-quickgelu with random weights;"
    )
    with caplog.at_level("WARNING"):
        assert clip_for_features(None, "old", "ViT-L-14", None, "--clip-model") == {"clip_model_name": "ViT-L-14"}
    assert "old: the features record no CLIP model" in caplog.text and "ViT-L-14 with random weights" in caplog.text

    features = Dataset.from_dict({"video_id": ["v"]})
    features.info.description = 'MIST CLIP video features: {"clip_model_name": "ViT-B-16", "clip_pretrained": "openai"}'
    processor = SimpleNamespace(video_processor=SimpleNamespace(clip_model_name="ViT-B-32", clip_pretrained="openai"))
    with pytest.raises(UsageError, match="made with CLIP ViT-B-16 with weights openai, but the model out asks for ViT-B-32"):
        check_processor_clip(processor, features, "f", "out", None)


def test_features_from_the_hub_get_their_settings_file_back(monkeypatch, tmp_path):
    from training.data import feature_settings

    (tmp_path / "extraction_settings.json").write_text('{"clip_model_name": "ViT-B-16", "num_frames": 32}')
    rows = Dataset.from_dict(
        {"video_id": ["v"], "frame_features": [[[0.0] * 2]], "patch_features": [[[[0.0] * 2]]]}
    )
    monkeypatch.setattr("training.data.features.load_dataset", lambda name, split: rows)
    monkeypatch.setattr(
        "huggingface_hub.hf_hub_download", lambda repo_id, filename, repo_type: str(tmp_path / filename)
    )
    loaded = load_features("someone/features")
    assert feature_settings(loaded) == {"clip_model_name": "ViT-B-16", "num_frames": 32}


def test_a_hub_dataset_folder_given_to_training_points_to_prepare_dataset(tmp_path):
    from training.errors import UsageError

    (tmp_path / "MC").mkdir()
    Dataset.from_dict({"video": [1], "qid": [0]}).to_parquet(str(tmp_path / "MC" / "test-00000-of-00001.parquet"))
    with pytest.raises(UsageError) as raised:
        load_questions(str(tmp_path))
    assert str(raised.value).endswith(
        f"is not a saved dataset: a Hub dataset's folder? convert it with `mist prepare-dataset {tmp_path} "
        "--output-dir DIR`"
    )
