"""`mist app` as a command: serves a model folder on the given port, with the demo's samples when the folder is
a demo's; a folder that cannot be loaded is a usage error."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app.app_testing import free_port
from tests.helpers import REPO_ROOT


pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def wait_for_page(url: str, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mist app exited with {process.returncode}: {process.stderr.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"mist app did not serve {url} within {timeout} s")


def test_mist_app_serves_a_demo_folder_with_its_samples(app_model_dir, app_video, tmp_path):
    from gradio_client import Client, handle_file
    from tests.training.training_testing import tiny_task_config, write_task

    demo = tmp_path / "demo"
    shutil.copytree(app_model_dir, demo / "model")
    (demo / "demo_results.json").write_text("{}")
    write_task(demo / "data", tiny_task_config(train_videos=2, eval_videos=2))
    port = free_port()
    command = [sys.executable, "-m", "training.cli", "app", "--model", str(demo / "model"), "--port", str(port),
               "--device", "cpu", "--samples", "2"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=str(REPO_ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_page(url, process)
        assert sorted(path.name for path in (demo / "app_samples").iterdir()) == ["test_00000.mp4", "test_00001.mp4"]
        ranked, label, picture, _ = Client(url, verbose=False).predict(
            handle_file(str(app_video)), "what did the person hold?", "", api_name="/answer"
        )
        assert len(ranked) == 5 and [set(item) for item in ranked] == [{"answer", "score"}] * 5
        assert label["label"] == ranked[0]["answer"] and Path(picture).stat().st_size > 10_000
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_mist_app_refuses_a_folder_it_cannot_load(tmp_path, capsys):
    from training.cli import main as mist

    assert mist(["app", "--model", str(tmp_path / "missing"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mist app: cannot load") and "missing" in error and "Traceback" not in error


def test_without_model_the_demo_model_is_built_once(tmp_path, monkeypatch):
    import training.demo
    from training.cli.app import demo_model

    built = []

    def fake_run_demo(options, report):
        built.append((options.output_dir, options.skip_baseline))
        (Path(options.output_dir) / "model").mkdir(parents=True)
        (Path(options.output_dir) / "model" / "config.json").write_text("{}")

    monkeypatch.setattr(training.demo, "run_demo", fake_run_demo)
    assert demo_model(tmp_path / "demo") == tmp_path / "demo" / "model"
    assert demo_model(tmp_path / "demo") == tmp_path / "demo" / "model"
    assert built == [(str(tmp_path / "demo"), True)]  # MIST only, and only when missing
