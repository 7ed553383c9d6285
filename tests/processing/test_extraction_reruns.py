"""`mist extract-features` run again and again on a shared machine: a refused run leaves nothing that refuses the
corrected one, a second run into the same work folder is told which run holds it, a full disk is one line that
keeps the finished videos, and every file it writes is readable as the umask says."""

import json
import os
import shutil
import socket
import stat

import pytest
from datasets import load_from_disk
from safetensors import SafetensorError

import processing.feature_store
from processing.feature_store import FeatureStore
from processing.file_utils import mode_for_new_files
from tests.processing.test_extract_features import extract_args
from training.cli.extract_features import main


@pytest.fixture
def alpha(tmp_path, video_dir):
    path = tmp_path / "inputs" / "alpha.mp4"
    path.parent.mkdir()
    shutil.copy(os.path.join(video_dir, "alpha.mp4"), path)
    return path


def test_a_run_refused_before_its_first_video_leaves_nothing_that_refuses_the_corrected_one(
    alpha, tmp_path, clip_model_name, capsys
):
    output_dir = tmp_path / "features"
    # crop 32 does not fit the 224-pixel CLIP: refused when CLIP is built, after the work folder was set up
    assert main([str(alpha), *extract_args(clip_model_name, output_dir, "--crop-size", "32")]) == 2
    assert "takes (224, 224) images but crop_size is (32, 32)" in capsys.readouterr().err
    assert not os.path.exists(f"{output_dir}.work")
    assert main([str(alpha), *extract_args(clip_model_name, output_dir)]) == 0
    assert list(load_from_disk(str(output_dir))["video_id"]) == ["alpha"]


def test_settings_of_an_earlier_run_with_finished_videos_are_kept_and_named(alpha, tmp_path, clip_model_name, capsys):
    work = FeatureStore(str(tmp_path / "features.work"))
    work.prepare({"num_frames": 4})
    (tmp_path / "features.work" / "videos" / "old.safetensors").write_bytes(b"x")
    capsys.readouterr()
    assert main([str(alpha), *extract_args(clip_model_name, tmp_path / "features")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"mist extract-features: work dir {work.work_dir} holds 1 videos made with ")
    assert "num_frames=4" in error and error.endswith(
        "rerun with the same settings to resume them, or choose another --work-dir"
    )
    assert json.loads((tmp_path / "features.work" / "settings.json").read_text()) == {"num_frames": 4}


def test_a_second_run_into_the_same_work_folder_is_told_which_run_holds_it(alpha, tmp_path, clip_model_name, capsys):
    output_dir = tmp_path / "features"
    other = FeatureStore(f"{output_dir}.work")
    other.lock("mist extract-features videos/ --output-dir features")  # this process stands for the other run
    record = json.loads((tmp_path / "features.work" / "lock").read_text())
    capsys.readouterr()
    assert main([str(alpha), *extract_args(clip_model_name, output_dir)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"mist extract-features: work dir {other.work_dir} is in use by another extraction (pid {os.getpid()} on "
        f"{socket.gethostname()}, started {record['started']}: mist extract-features videos/ --output-dir features); "
        f"wait for it to finish or choose another --work-dir (if that run is gone, delete {other.lock_path})"
    )
    assert not output_dir.exists()
    other.unlock()
    assert main([str(alpha), *extract_args(clip_model_name, output_dir)]) == 0


def test_the_lock_of_a_run_that_died_is_taken_over(alpha, tmp_path, clip_model_name):
    output_dir = tmp_path / "features"
    (tmp_path / "features.work").mkdir()
    dead = {"pid": 2**22 + 12345, "host": socket.gethostname(), "started": "2026-01-01 00:00:00", "command": "x"}
    (tmp_path / "features.work" / "lock").write_text(json.dumps(dead))
    assert main([str(alpha), *extract_args(clip_model_name, output_dir)]) == 0
    assert not (tmp_path / "features.work").exists()


def test_a_full_disk_is_one_line_that_keeps_the_finished_videos(
    tmp_path, video_dir, clip_model_name, capsys, monkeypatch
):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("alpha.mp4", "bravo.webm", "charlie.avi"):
        shutil.copy(os.path.join(video_dir, name), inputs / name)
    output_dir = tmp_path / "features"
    real_save = processing.feature_store.save_file
    saved = []

    def disk_fills_up(tensors, path, metadata=None):
        if saved:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        saved.append(path)
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(processing.feature_store, "save_file", disk_fills_up)
    capsys.readouterr()
    assert main([str(inputs), *extract_args(clip_model_name, output_dir, "--batch-size", "1")]) == 1
    error = capsys.readouterr().err.strip()
    assert "Traceback" not in error and len(error.splitlines()) == 1
    assert error.startswith(
        f"mist extract-features: {output_dir}.work: the disk is full after 1 of the 3 videos to compute; the 2 others "
        "need about "
    )
    assert error.endswith("the finished videos are kept: free space and rerun to continue")
    assert os.listdir(f"{output_dir}.work/videos") == ["alpha.safetensors"]
    assert not [name for name in os.listdir(f"{output_dir}.work/videos") if name.endswith(".tmp")]

    monkeypatch.setattr(processing.feature_store, "save_file", real_save)
    assert main([str(inputs), *extract_args(clip_model_name, output_dir)]) == 0
    assert list(load_from_disk(str(output_dir))["video_id"]) == ["alpha", "bravo", "charlie"]


def test_no_room_for_the_dataset_is_refused_before_it_is_written(alpha, tmp_path, clip_model_name, capsys, monkeypatch):
    output_dir = tmp_path / "features"
    monkeypatch.setattr("processing.file_utils.free_bytes", lambda path: 1000)
    assert main([str(alpha), *extract_args(clip_model_name, output_dir)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"mist extract-features: {tmp_path}: not enough disk space for the features dataset of 1 ")
    assert error.endswith(", 0.00 MB free")
    assert not output_dir.exists() and os.listdir(f"{output_dir}.work/videos") == ["alpha.safetensors"]


def test_files_get_the_umask_not_0600(alpha, tmp_path, clip_model_name):
    previous = os.umask(0o002)
    try:
        output_dir = tmp_path / "features"
        assert main([str(alpha), *extract_args(clip_model_name, output_dir, "--keep-work-dir")]) == 0
    finally:
        os.umask(previous)
    written = [path for path in tmp_path.rglob("*") if path.is_file() and "inputs" not in path.parts]
    assert f"{output_dir}.work/videos/alpha.safetensors" in map(str, written)
    assert {oct(stat.S_IMODE(path.stat().st_mode)) for path in written} == {oct(0o664)}
    assert mode_for_new_files() == 0o666 & ~previous


def test_ctrl_c_is_one_line_naming_what_is_kept(alpha, tmp_path, clip_model_name, capsys, monkeypatch):
    import processing.extract_features

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(processing.extract_features, "extract_share", interrupted)
    output_dir = tmp_path / "features"
    assert main([str(alpha), *extract_args(clip_model_name, output_dir)]) == 130
    assert capsys.readouterr().err.strip() == (
        f"mist extract-features: interrupted; the finished videos are kept in {output_dir}.work: run the same "
        "command again to continue"
    )
    with pytest.raises(KeyboardInterrupt):  # --debug: the interruption itself
        main([str(alpha), *extract_args(clip_model_name, output_dir, "--debug")])
