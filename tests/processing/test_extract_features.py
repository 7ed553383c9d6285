"""`mist extract-features`: the dataset it writes, bad videos, resuming after a kill, two processes, questions."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datasets import load_from_disk

from modeling_mist.video_processing_mist import MistVideoProcessor
from processing.extract_features import find_videos
from processing.question_embeddings import add_question_embeddings
from tests.helpers import CLIP_EMBED_DIM, run_python
from tests.processing.video_testing import GRID_SIZE, NUM_FRAMES, REPO_ROOT, write_video
from training.cli.extract_features import main

GOOD_VIDEOS = ["alpha.mp4", "bravo.webm", "charlie.avi", "delta.mkv"]
GOOD_VIDEOS_IDS = [os.path.splitext(name)[0] for name in GOOD_VIDEOS]


def extract_args(clip_model_name: str, output_dir, *extra) -> list[str]:
    return [
        "--output-dir", str(output_dir), "--clip-model", clip_model_name, "--clip-pretrained", "none",
        "--num-frames", str(NUM_FRAMES), "--grid-size", str(GRID_SIZE), "--no-progress", *extra,
    ]  # fmt: skip


def reference_features(
    clip_model_name: str, paths: list[str], num_frames=NUM_FRAMES, grid_size=GRID_SIZE, clip_dtype=None
):
    processor = MistVideoProcessor(
        clip_model_name=clip_model_name,
        clip_pretrained=None,
        num_frames=num_frames,
        grid_size=grid_size,
        clip_dtype=clip_dtype,
    )
    return processor(paths)


@pytest.fixture
def input_dir(tmp_path, video_dir):
    """The four good videos, a truncated mp4 and a text file named like a video."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in GOOD_VIDEOS:
        shutil.copy(os.path.join(video_dir, name), folder / name)
    (folder / "truncated.mp4").write_bytes((folder / "alpha.mp4").read_bytes()[:1500])
    (folder / "notes.mkv").write_text("not a video")
    (folder / "readme.txt").write_text("not an input: no video suffix")
    return folder


def test_dataset_of_the_good_videos_and_a_summary_of_the_bad_ones(input_dir, tmp_path, clip_model_name, capsys):
    output_dir = tmp_path / "features"
    status = main([str(input_dir), *extract_args(clip_model_name, output_dir)])
    captured = capsys.readouterr()
    assert status == 1
    for name in ("truncated.mp4", "notes.mkv"):
        assert f"{input_dir / name}: " in captured.err  # which file, then why
    assert "2 videos failed and were skipped" in captured.err
    assert f"wrote 4 of 6 videos to {output_dir}" in captured.out

    dataset = load_from_disk(str(output_dir))
    assert list(dataset["video_id"]) == ["alpha", "bravo", "charlie", "delta"]
    assert dataset.features["frame_features"].shape == (NUM_FRAMES, CLIP_EMBED_DIM)
    assert dataset.features["patch_features"].shape == (NUM_FRAMES, GRID_SIZE**2, CLIP_EMBED_DIM)
    assert dataset.features["patch_features"].dtype == "float16"
    rows = dataset.with_format("numpy")[:]
    expected = reference_features(clip_model_name, [str(input_dir / name) for name in GOOD_VIDEOS])
    for name in ("frame_features", "patch_features"):
        np.testing.assert_allclose(rows[name], expected[name].half().numpy(), atol=1e-2, rtol=1e-2)

    # Fixing the inputs and rerunning reuses every finished video, succeeds and cleans up the work folder.
    (input_dir / "truncated.mp4").unlink()
    (input_dir / "notes.mkv").unlink()
    assert main([str(input_dir), *extract_args(clip_model_name, output_dir)]) == 0
    assert "(0 computed now, 4 reused)" in capsys.readouterr().out
    assert not os.path.exists(f"{output_dir}.work")
    assert list(load_from_disk(str(output_dir))["video_id"]) == ["alpha", "bravo", "charlie", "delta"]


def test_globs_list_files_and_float32(input_dir, tmp_path, clip_model_name):
    list_file = tmp_path / "videos.txt"
    list_file.write_text("# one path per line, relative to this file\ninputs/charlie.avi\n\n")
    output_dir = tmp_path / "features32"
    arguments = [
        str(input_dir / "*.webm"),
        str(list_file),
        *extract_args(clip_model_name, output_dir, "--dtype", "float32"),
    ]
    assert main(arguments) == 0
    dataset = load_from_disk(str(output_dir)).with_format("torch")[:]
    assert dataset["video_id"] == ["bravo", "charlie"]
    expected = reference_features(clip_model_name, [str(input_dir / "bravo.webm"), str(input_dir / "charlie.avi")])
    torch.testing.assert_close(dataset["patch_features"], expected["patch_features"], atol=1e-5, rtol=1e-5)


def test_clip_dtype_bfloat16_extracts_what_float32_does_within_its_precision(input_dir, tmp_path, clip_model_name):
    output_dir = tmp_path / "features-bf16"
    arguments = [
        str(input_dir / "charlie.avi"),
        *extract_args(clip_model_name, output_dir, "--clip-dtype", "bfloat16"),
    ]
    assert main([*arguments, "--dtype", "float32"]) == 0
    features = load_from_disk(str(output_dir)).with_format("torch")[:]["patch_features"]
    expected = reference_features(clip_model_name, [str(input_dir / "charlie.avi")], clip_dtype="float32")
    expected = expected["patch_features"]
    assert features.shape == expected.shape
    cosine = torch.nn.functional.cosine_similarity(features.flatten(0, -2), expected.flatten(0, -2), dim=-1)
    assert cosine.min() > 0.999 and not torch.equal(features, expected)


def test_an_unknown_clip_dtype_is_refused_before_any_work(input_dir, tmp_path, clip_model_name, capsys):
    output_dir = tmp_path / "never"
    with pytest.raises(SystemExit) as exit_info:
        main([str(input_dir), *extract_args(clip_model_name, output_dir, "--clip-dtype", "half")])
    assert exit_info.value.code == 2
    assert "--clip-dtype: invalid choice: 'half'" in capsys.readouterr().err
    assert not output_dir.exists()


def test_find_videos_takes_frame_folders_and_rejects_clashing_ids(input_dir, tmp_path):
    frames = input_dir / "echo"
    frames.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(frames / "0001.png")
    ids = [video.video_id for video in find_videos([str(input_dir)])]
    assert ids == ["alpha", "bravo", "charlie", "delta", "echo", "notes", "truncated"]
    (tmp_path / "alpha.webm").write_bytes(b"")
    with pytest.raises(ValueError, match="alpha"):
        find_videos([str(input_dir), str(tmp_path / "alpha.webm")])
    with pytest.raises(ValueError, match="no such"):
        find_videos([str(tmp_path / "missing.mp4")])


def test_refuses_mixed_settings_and_foreign_output_folders(input_dir, tmp_path, clip_model_name, capsys):
    output_dir = tmp_path / "features"
    arguments = [str(input_dir / "alpha.mp4"), *extract_args(clip_model_name, output_dir, "--keep-work-dir")]
    assert main(arguments) == 0
    assert main(arguments + ["--dtype", "float32"]) == 2  # the work folder holds float16 features
    assert "rerun with the same settings" in capsys.readouterr().err
    foreign = tmp_path / "my-documents"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert main([str(input_dir / "alpha.mp4"), *extract_args(clip_model_name, foreign)]) == 2
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_question_embeddings(input_dir, tmp_path, clip_model_name):
    questions = [
        {"question_id": 1, "video_id": "alpha", "question": "what is the person holding?"},
        {"question_id": 2, "video_id": "bravo", "question": "where did the ball go"},
        {"question_id": 3, "video_id": "alpha", "question": "what is the person holding?"},
    ]
    jsonl = tmp_path / "questions.jsonl"
    jsonl.write_text("".join(json.dumps(record) + "\n" for record in questions))
    extra = ["--questions", str(jsonl), "--questions-output", str(tmp_path / "with_clip.jsonl")]
    assert main([str(input_dir / "alpha.mp4"), *extract_args(clip_model_name, tmp_path / "features", *extra)]) == 0
    written = [json.loads(line) for line in (tmp_path / "with_clip.jsonl").read_text().splitlines()]
    assert [record["question_id"] for record in written] == [1, 2, 3]
    processor = MistVideoProcessor(clip_model_name=clip_model_name, clip_pretrained=None)
    expected = processor.encode_text([record["question"] for record in questions])
    np.testing.assert_allclose([record["question_clip_embedding"] for record in written], expected.numpy(), rtol=1e-6)

    pq.write_table(pa.Table.from_pylist(questions), tmp_path / "q.parquet")
    add_question_embeddings(str(tmp_path / "q.parquet"), str(tmp_path / "out.parquet"), processor.encode_text)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("question_clip_embedding").type.value_type == pa.float32()
    np.testing.assert_allclose(table["question_clip_embedding"].to_pylist(), expected.numpy(), rtol=1e-6)


@pytest.mark.slow
def test_resume_after_a_kill_keeps_finished_videos_and_computes_each_once(tmp_path, clip_model_name):
    videos = tmp_path / "videos"
    videos.mkdir()
    for index in range(8):
        write_video(str(videos / f"clip{index}.mp4"), num_frames=20 + index)
    output_dir = tmp_path / "features"
    # 16 frames and a 4x4 grid per video, one video at a time: slow enough to be killed half-way.
    arguments = [str(videos), *extract_args(clip_model_name, output_dir, "--batch-size", "1", "--decode-workers", "1")]
    arguments[arguments.index("--num-frames") + 1] = "16"
    arguments[arguments.index("--grid-size") + 1] = "4"
    command = [sys.executable, "-m", "training.cli", "extract-features", *arguments]
    environment = {**os.environ, "PYTHONPATH": REPO_ROOT}
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    finished_dir = f"{output_dir}.work/videos"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.isdir(finished_dir) and len([n for n in os.listdir(finished_dir) if not n.startswith(".")]) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, (
        "the run ended before it could be interrupted: " + process.stderr.read().decode()[-2000:]
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    before = {
        name: os.stat(os.path.join(finished_dir, name)).st_mtime_ns
        for name in os.listdir(finished_dir)
        if not name.startswith(".")
    }
    assert 2 <= len(before) < 8
    assert not os.path.exists(output_dir)

    assert main(arguments + ["--keep-work-dir"]) == 0
    after = {name: os.stat(os.path.join(finished_dir, name)).st_mtime_ns for name in os.listdir(finished_dir)}
    assert len(after) == 8 and not [name for name in after if name.endswith(".tmp")]
    assert all(after[name] == mtime for name, mtime in before.items())  # finished videos were not recomputed
    dataset = load_from_disk(str(output_dir)).with_format("numpy")
    assert list(dataset["video_id"]) == [f"clip{index}" for index in range(8)]
    # Values intact: videos from before and after the kill equal a direct computation.
    checked = [int(name[len("clip") : -len(".safetensors")]) for name in sorted(before)][:2]
    checked.append(next(index for index in range(8) if f"clip{index}.safetensors" not in before))
    expected = reference_features(
        clip_model_name, [str(videos / f"clip{index}.mp4") for index in checked], num_frames=16, grid_size=4
    )
    np.testing.assert_allclose(
        dataset[checked]["patch_features"], expected["patch_features"].half().numpy(), atol=1e-2, rtol=1e-2
    )


@pytest.mark.slow
def test_two_processes_write_each_video_exactly_once(input_dir, tmp_path, clip_model_name):
    for name in ("truncated.mp4", "notes.mkv"):
        (input_dir / name).unlink()
    for index in range(2):
        write_video(str(input_dir / f"extra{index}.mp4"), num_frames=12 + index)
    output_dir = tmp_path / "features"
    launch = [
        "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training.cli", "extract-features",
    ]  # fmt: skip
    result = run_python(
        [*launch, str(input_dir), *extract_args(clip_model_name, output_dir, "--keep-work-dir")],
        cwd=REPO_ROOT,
        env={"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(path.read_text()) for path in sorted((tmp_path / "features.work" / "done").iterdir())]
    assert [summary["share"] for summary in summaries] == [3, 3]  # two processes, disjoint halves
    assert sum(summary["computed"] for summary in summaries) == 6  # nothing computed twice
    dataset = load_from_disk(str(output_dir))
    assert list(dataset["video_id"]) == ["alpha", "bravo", "charlie", "delta", "extra0", "extra1"]
    expected = reference_features(clip_model_name, [str(input_dir / "extra1.mp4")])
    np.testing.assert_allclose(
        dataset.with_format("numpy")[5]["frame_features"],
        expected["frame_features"][0].half().numpy(),
        atol=1e-2,
        rtol=1e-2,
    )


def test_a_download_cut_in_half_is_skipped_as_truncated_and_computed_once_fetched_again(
    input_dir, tmp_path, clip_model_name, capsys
):
    whole = write_video(str(tmp_path / "whole.mp4"), num_frames=48, faststart=True)  # index first: it still opens
    data = open(whole, "rb").read()
    (input_dir / "Kitchen #3 (take 2).mp4").write_bytes(data[: len(data) // 2])
    output_dir = tmp_path / "features"
    assert main([str(input_dir), *extract_args(clip_model_name, output_dir)]) == 1
    err = capsys.readouterr().err
    assert f"{input_dir / 'Kitchen #3 (take 2).mp4'}: truncated: its header declares 48 frames but only" in err
    assert list(load_from_disk(str(output_dir))["video_id"]) == GOOD_VIDEOS_IDS  # written without it

    (input_dir / "Kitchen #3 (take 2).mp4").write_bytes(data)  # fetched again, whole
    assert main([str(input_dir / "Kitchen #3 (take 2).mp4"), *extract_args(clip_model_name, output_dir)]) == 0
    assert "(1 computed now, 0 reused)" in capsys.readouterr().out
    assert list(load_from_disk(str(output_dir))["video_id"]) == sorted([*GOOD_VIDEOS_IDS, "Kitchen #3 (take 2)"])


def test_nothing_encodable_writes_nothing_and_fails(tmp_path, clip_model_name, capsys):
    (tmp_path / "broken.mp4").write_text("not a video")
    assert main([str(tmp_path / "broken.mp4"), *extract_args(clip_model_name, tmp_path / "features")]) == 1
    assert "nothing written" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "features")


def test_extraction_into_an_existing_dataset_adds_the_new_videos_and_keeps_the_old_ones(
    input_dir, tmp_path, clip_model_name, capsys, monkeypatch
):
    output_dir = tmp_path / "features"
    three = [str(input_dir / name) for name in GOOD_VIDEOS[:3]]
    assert main([*three, *extract_args(clip_model_name, output_dir)]) == 0
    before = load_from_disk(str(output_dir)).with_format("numpy")[:]

    encoded = []
    real_extract = MistVideoProcessor.extract_features

    def counting_extract(self, videos, *args, **kwargs):
        encoded.append(len(videos))
        return real_extract(self, videos, *args, **kwargs)

    monkeypatch.setattr(MistVideoProcessor, "extract_features", counting_extract)
    capsys.readouterr()
    assert main([str(input_dir / "delta.mkv"), *extract_args(clip_model_name, output_dir)]) == 0
    assert encoded == [1]  # only the new video went through CLIP
    assert capsys.readouterr().out.strip() == (
        f"wrote 1 of 1 videos to {output_dir} (1 computed now, 0 reused); "
        "kept the 3 other videos already there (4 in all)"
    )
    after = load_from_disk(str(output_dir)).with_format("numpy")[:]
    assert list(after["video_id"]) == ["alpha", "bravo", "charlie", "delta"]
    for name in ("frame_features", "patch_features"):
        np.testing.assert_array_equal(after[name][:3], before[name])  # the old rows, bit for bit

    encoded.clear()
    assert main([*three, *extract_args(clip_model_name, output_dir)]) == 0  # all there already: nothing to do
    assert encoded == [] and "(0 computed now, 3 reused); kept the 1 other videos already there (4 in all)" in (
        capsys.readouterr().out
    )
    assert list(load_from_disk(str(output_dir))["video_id"]) == ["alpha", "bravo", "charlie", "delta"]


def test_extraction_with_other_settings_into_an_existing_dataset_is_refused(
    input_dir, tmp_path, clip_model_name, capsys
):
    output_dir = tmp_path / "features"
    assert main([str(input_dir / "alpha.mp4"), *extract_args(clip_model_name, output_dir)]) == 0
    capsys.readouterr()
    assert main([str(input_dir / "bravo.webm"), *extract_args(clip_model_name, output_dir, "--num_frames", "4")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mist extract-features: --output-dir {output_dir} holds 1 videos made with num_frames=8, but this run asks "
        "for num_frames=4; rerun with the same settings to add videos to it, or choose another --output-dir"
    )
    assert list(load_from_disk(str(output_dir))["video_id"]) == ["alpha"]  # untouched
    assert not os.path.exists(f"{output_dir}.work")  # refused before any work started


def test_a_swap_killed_between_its_renames_is_undone_by_the_next_run(input_dir, tmp_path, clip_model_name):
    output_dir = tmp_path / "features"
    assert main([str(input_dir / "alpha.mp4"), *extract_args(clip_model_name, output_dir)]) == 0
    os.replace(output_dir, f"{output_dir}.previous")  # killed after moving the old dataset aside
    assert main([str(input_dir / "bravo.webm"), *extract_args(clip_model_name, output_dir)]) == 0
    assert list(load_from_disk(str(output_dir))["video_id"]) == ["alpha", "bravo"]
    assert not os.path.exists(f"{output_dir}.previous")
