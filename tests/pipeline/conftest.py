"""Fixtures of the pipeline tests: tiny saved MIST models (open-ended and multiple choice) and a video of known fps."""

import pytest

from tests.pipeline.pipeline_testing import write_tiny_model, write_video


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny-parts")
    return write_tiny_model(tmp_path_factory.mktemp("tiny-mist"), work)


@pytest.fixture(scope="session")
def choice_model_dir(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny-parts-mc")
    return write_tiny_model(tmp_path_factory.mktemp("tiny-mist-mc"), work, task="multiple-choice")


@pytest.fixture(scope="session")
def video_path(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("videos") / "moving.mp4")
