"""Fixtures of the training tests: a tiny BERT, the tiny synthetic task on disk, a tiny CLIP config."""

import pytest
from training_testing import tiny_task_config, write_clip_config, write_task, write_text_encoder


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
