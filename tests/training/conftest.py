"""Fixtures of the training tests: a tiny BERT, the tiny synthetic task on disk, a tiny CLIP config, and a
tiny trained model pushed to a recording stand-in for the Hub."""

from types import SimpleNamespace
from unittest.mock import patch

import pytest
from huggingface_hub import HfApi

from tests.helpers import write_clip_config
from tests.training.training_testing import RecordingHub, tiny_task_config, write_task, write_text_encoder
from training.cli import main as mist


@pytest.fixture(scope="session")
def text_encoder_dir(tmp_path_factory):
    return write_text_encoder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory):
    """(questions folder, features folder) of the tiny synthetic task: 24/8/8 videos, 2 questions each."""
    return write_task(tmp_path_factory.mktemp("tiny-task"), tiny_task_config())


@pytest.fixture(scope="session")
def clip_model_name(tmp_path_factory):
    return write_clip_config(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_model(tiny_task, text_encoder_dir, clip_model_name, tmp_path_factory):
    """A tiny MIST trained 2 steps whose processor embeds real videos with the tiny random CLIP (224-pixel
    crops), run with `--push_to_hub` against a `RecordingHub`: (path, hub)."""
    questions, features = tiny_task
    output_dir = tmp_path_factory.mktemp("tiny-model") / "mist-tiny"
    hub = RecordingHub()
    with (
        patch.object(HfApi, "create_repo", autospec=True, side_effect=hub.create_repo),
        patch.object(HfApi, "upload_folder", autospec=True, side_effect=hub.upload_folder),
    ):
        code = mist(
            ["train", "--dataset", str(questions), "--features", str(features), "--output-dir", str(output_dir),
             "--preset", "tiny", "--text-encoder", str(text_encoder_dir), "--clip_model", clip_model_name,
             "--clip_pretrained", "none", "--config_overrides", "crop_size=224", "--max_steps", "2",
             "--push_to_hub", "--hub_model_id", "someone/mist-tiny"]
        )  # fmt: skip
    assert code == 0
    return SimpleNamespace(path=output_dir, hub=hub)
