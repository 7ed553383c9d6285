"""Fixtures of the app tests: a tiny saved MIST, a video of known fps, the app served on a free local port."""

import pytest

from tests.app.app_testing import free_port
from tests.pipeline.pipeline_testing import write_tiny_model, write_video


@pytest.fixture(scope="session")
def app_model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("app-mist"), tmp_path_factory.mktemp("app-parts"))


@pytest.fixture(scope="session")
def app_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("app-videos") / "moving.mp4")


@pytest.fixture(scope="session")
def answerer(app_model_dir, tmp_path_factory):
    from transformers import pipeline

    import modeling_mist  # noqa: F401
    from training.app import VideoQuestionAnswerer

    pipe = pipeline("video-question-answering", model=str(app_model_dir), device="cpu")
    return VideoQuestionAnswerer(pipe, output_dir=tmp_path_factory.mktemp("app-pictures"))


@pytest.fixture(scope="session")
def served_app(answerer):
    """The app on 127.0.0.1 (no share link, analytics off), closed after the tests."""
    from training.app import launch_app

    app = launch_app(answerer, host="127.0.0.1", port=free_port(), block=False)
    yield app
    app.close()
