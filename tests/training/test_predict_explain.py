"""`mist predict`: top answers with scores, the kept segments/patches, and the --explain PNG."""

import json

import av
import numpy as np
import pytest
from datasets import load_from_disk
from PIL import Image

from training.cli import main as mist
from training.explain import LAYER_COLORS


@pytest.fixture(scope="module")
def model_dir(tiny_task, text_encoder_dir, clip_model_name, tmp_path_factory):
    """A tiny MIST whose processor embeds videos with the tiny random CLIP (224-pixel crops)."""
    questions, features = tiny_task
    output_dir = tmp_path_factory.mktemp("predict-model")
    code = mist(
        ["train", "--dataset", str(questions), "--features", str(features), "--output-dir", str(output_dir),
         "--preset", "tiny", "--text-encoder", str(text_encoder_dir), "--clip_model", clip_model_name,
         "--clip_pretrained", "none", "--config_overrides", "crop_size=224", "--max_steps", "2",
         "--eval_split", "none", "--test_split", "none"]
    )  # fmt: skip
    assert code == 0
    return output_dir


def printed_json(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{\n") :])


def layer_colour_pixels(png, colour: str) -> int:
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image - rgb).sum(axis=-1) < 30).sum())


def test_predict_from_stored_features_explains_the_selection(model_dir, tiny_task, tmp_path, capsys):
    question = load_from_disk(str(tiny_task[0]))["test"][0]
    np.save(tmp_path / "question.npy", np.asarray(question["question_clip_embedding"], dtype=np.float32))
    png = tmp_path / "explain.png"
    capsys.readouterr()
    code = mist(
        ["predict", "--model", str(model_dir), "--features", str(tiny_task[1]), "--video-id", question["video_id"],
         "--question", question["question"], "--question-clip-embedding", str(tmp_path / "question.npy"),
         "--explain", str(png), "--top-k", "3"]
    )  # fmt: skip
    assert code == 0
    result = printed_json(capsys)
    scores = [answer["score"] for answer in result["answers"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    assert [layer["layer"] for layer in result["selections"]] == [1, 2]
    for layer in result["selections"]:
        assert len(layer["segments"]) == 2 and len(set(layer["segments"])) == 2  # k = 2 of 4 segments
        expected_frames = [2 * segment + offset for segment in layer["segments"] for offset in range(2)]
        assert layer["frames"] == expected_frames  # 2 frames per segment, in time order
        assert sorted(map(int, layer["patches"])) == sorted(expected_frames)
        assert all(len(kept) == 2 and set(kept) <= {0, 1, 2, 3} for kept in layer["patches"].values())
    assert result["explanation"] == str(png)
    width, height = Image.open(png).size
    assert width > 300 and height > 200
    # each layer's colour marks its segments, its patch outlines and its score bars
    assert layer_colour_pixels(png, LAYER_COLORS[0]) > 200 and layer_colour_pixels(png, LAYER_COLORS[1]) > 200


def test_predict_on_a_video_file_runs_clip_and_draws_its_frames(model_dir, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(20):
            image = np.full((48, 64, 3), 10 + 10 * index, dtype=np.uint8)
            image[10:22, 3 * index : 3 * index + 12] = (20, 200, 20)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    png = tmp_path / "video.png"
    capsys.readouterr()
    assert mist(["predict", "--model", str(model_dir), "--video", str(video), "--question", "what appeared together with the cup?",
                 "--explain", str(png)]) == 0  # fmt: skip
    result = printed_json(capsys)
    assert len(result["answers"]) == 5 and png.exists()
    # the decoded frames (green squares on grey) are drawn, not placeholders
    assert layer_colour_pixels(png, "#14c814") > 50


def test_predict_needs_a_video_or_features(model_dir):
    with pytest.raises(SystemExit):
        mist(["predict", "--model", str(model_dir), "--question", "what?"])
