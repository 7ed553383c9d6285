"""Fixtures of the training tests: a tiny BERT, the tiny synthetic task on disk, a tiny CLIP config, and a
tiny trained model pushed to a recording stand-in for the Hub."""

from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch

import pytest
from huggingface_hub import HfApi
from training_testing import tiny_task_config, write_clip_config, write_task, write_text_encoder

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


class RecordingHub:
    """Stands in for the Hub: `HfApi.create_repo` and `HfApi.upload_folder` record what they were asked,
    and `upload_folder` keeps a copy of the folder's files as they were at upload time."""

    def __init__(self):
        self.created, self.uploads = [], []

    def create_repo(self, api, repo_id, **kwargs):
        self.created.append({"repo_id": repo_id, **kwargs})
        return SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"someone/{repo_id}")

    def upload_folder(self, api, *, repo_id, folder_path, ignore_patterns=None, **kwargs):
        folder = Path(folder_path)
        patterns = ignore_patterns or []
        files = {
            str(path.relative_to(folder)): path.read_bytes()
            for path in folder.rglob("*")
            if path.is_file()
            and not any(fnmatch(part, pattern) for part in path.relative_to(folder).parts for pattern in patterns)
        }
        self.uploads.append({"repo_id": repo_id, "folder_path": str(folder_path), "files": files, **kwargs})
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0")


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
