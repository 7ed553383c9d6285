"""Videos inside zip archives (how the Hub's video QA datasets ship them): decoded in place, resumable, counted."""

import os
import zipfile

import numpy as np
import pytest
from datasets import load_from_disk

from modeling_mist.video_decoding_mist import load_video_frames, sample_frame_indices
from processing.video_archives import open_member
from processing.video_inputs import find_video_inputs
from tests.processing.test_extract_features import extract_args, reference_features
from training.cli.extract_features import main


def write_archive(path, members: dict, compression=zipfile.ZIP_STORED):
    """`members`: archive path -> local file (or bytes)."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, source in members.items():
            if isinstance(source, bytes):
                archive.writestr(name, source)
            else:
                archive.write(source, name)
    return str(path)


def sample(metadata):
    return sample_frame_indices(metadata.total_num_frames, 8)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_member_decodes_to_the_frames_of_its_file(video_dir, tmp_path, compression):
    archive = write_archive(
        tmp_path / "videos.zip",
        {"NExTVideo/alpha.mp4": os.path.join(video_dir, "alpha.mp4"), "NExTVideo/bravo.webm": f"{video_dir}/bravo.webm"},
        compression,
    )
    for name in ("alpha.mp4", "bravo.webm"):
        expected, _ = load_video_frames(os.path.join(video_dir, name), sample)
        with open_member(archive, f"NExTVideo/{name}") as file:
            assert file.name == f"{archive}::NExTVideo/{name}"
            frames, metadata = load_video_frames(file, sample)
        np.testing.assert_array_equal(frames, expected)
        assert metadata.frames_indices == list(sample_frame_indices(metadata.total_num_frames, 8))


def test_archives_give_member_stems_skip_other_members_and_refuse_unknown_files(video_dir, tmp_path):
    first = write_archive(
        tmp_path / "videos_chunked_01.zip",
        {"videos/alpha.mp4": f"{video_dir}/alpha.mp4", "videos/readme.txt": b"notes", "videos/": b""},
    )
    write_archive(  # bravo twice: the same member in two archives counts once
        tmp_path / "videos_chunked_02.zip", {"videos/bravo.webm": f"{video_dir}/bravo.webm"}
    )
    write_archive(tmp_path / "videos_chunked_03.zip", {"other/bravo.webm": f"{video_dir}/bravo.webm"})
    found = find_video_inputs([str(tmp_path / "videos_chunked_*.zip")])
    assert [(video.video_id, video.path, os.path.basename(video.archive)) for video in found.videos] == [
        ("alpha", "videos/alpha.mp4", "videos_chunked_01.zip"),
        ("bravo", "videos/bravo.webm", "videos_chunked_02.zip"),  # the first archive that has it
    ]
    assert found.skipped_members == 1  # readme.txt; the folder entry is no member
    assert find_video_inputs([first]).videos[0].name == f"{first}::videos/alpha.mp4"

    write_archive(tmp_path / "clash.zip", {"x/alpha.mp4": f"{video_dir}/bravo.webm"})
    with pytest.raises(ValueError, match="several videos share an id"):
        find_video_inputs([first, str(tmp_path / "clash.zip")])
    png = tmp_path / "cover.jpg.list"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(ValueError) as raised:
        find_video_inputs([str(png)])
    assert str(raised.value) == (
        f"input {str(png)!r}: a PNG image, not a video file, a zip archive of videos or a text list of video paths"
    )
    with pytest.raises(ValueError, match="holds no video file"):
        find_video_inputs([write_archive(tmp_path / "docs.zip", {"a.txt": b"x"})])


def test_a_hub_folder_of_archives_extracts_and_resumes(video_dir, tmp_path, clip_model_name, capsys):
    hub = tmp_path / "egoschema"  # what `hf download --repo-type dataset lmms-eval/egoschema` lays out
    (hub / "Subset").mkdir(parents=True)
    (hub / "Subset" / "test-00000-of-00001.parquet").write_bytes(b"PAR1")
    (hub / "README.md").write_text("---\nconfigs: []\n---\n")
    write_archive(hub / "videos_chunked_01.zip", {"videos/alpha.mp4": f"{video_dir}/alpha.mp4"})
    write_archive(hub / "videos_chunked_02.zip", {"videos/delta.mkv": f"{video_dir}/delta.mkv", "videos/x.json": b"{}"})
    output = tmp_path / "features"
    assert main([str(hub), *extract_args(clip_model_name, output, "--keep-work-dir")]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 of 2 videos" in out and "skipped 1 archive members that are not videos" in out
    features = load_from_disk(str(output))
    assert features["video_id"] == ["alpha", "delta"]
    expected = reference_features(clip_model_name, [f"{video_dir}/alpha.mp4", f"{video_dir}/delta.mkv"])
    np.testing.assert_allclose(
        np.asarray(features.with_format("numpy")["patch_features"], dtype=np.float32),
        expected["patch_features"].numpy(),
        atol=2e-3,
    )
    write_archive(hub / "videos_chunked_03.zip", {"videos/bravo.webm": f"{video_dir}/bravo.webm"})
    assert main([str(hub), *extract_args(clip_model_name, output)]) == 0  # resumed: only bravo is computed
    assert "wrote 3 of 3 videos to" in capsys.readouterr().out
    assert load_from_disk(str(output))["video_id"] == ["alpha", "bravo", "delta"]


def test_a_hub_id_downloads_the_archives_of_that_dataset(video_dir, tmp_path, monkeypatch):
    folder = tmp_path / "snapshot"
    folder.mkdir()
    write_archive(folder / "videos.zip", {"NExTVideo/alpha.mp4": f"{video_dir}/alpha.mp4"})
    asked = {}

    def snapshot_download(**kwargs):
        asked.update(kwargs)
        return str(folder)

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    found = find_video_inputs(["lmms-eval/NExTQA"])
    assert [video.video_id for video in found.videos] == ["alpha"]
    assert asked["repo_id"] == "lmms-eval/NExTQA" and asked["repo_type"] == "dataset" and "*.zip" in asked["allow_patterns"]
