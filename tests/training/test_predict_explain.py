"""`mist predict`: top answers with scores, the kept segments/patches, and the --explain PNG."""

import json

import numpy as np
import pytest
from datasets import load_from_disk
from matplotlib import colormaps
from PIL import Image

from processing.video_encoding import encode_video
from tests.training.training_testing import write_video
from training.cli import main as mist
from training.explain import HEATMAP, LAYER_COLORS, draw_explanation, selections_of


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


def test_predict_prints_the_selection_record_of_the_pipeline(model_dir, tiny_task, capsys):
    from modeling_mist.selection_mist import MistSelection

    question = load_from_disk(str(tiny_task[0]))["test"][1]
    capsys.readouterr()
    assert mist(["predict", "--model", str(model_dir), "--features", str(tiny_task[1]), "--video-id",
                 question["video_id"], "--question", question["question"]]) == 0  # fmt: skip
    result = printed_json(capsys)
    assert list(result) == ["question", "answers", "selection", "video", "selections"]
    selection = MistSelection.from_json(result)  # the pipeline's shape: one record for both
    assert selection.to_json() == {"selection": result["selection"], "video": result["video"]}
    assert result["video"]["unit"] == "frames" and result["video"]["frame_times"] == list(range(8))
    for layer, kept in zip(selection.layers, result["selections"], strict=True):
        assert kept["layer"] == layer.layer and kept["segments"] == [segment.segment for segment in layer.segments]
        assert kept["frames"] == [frame.frame for frame in layer.frames]
        assert kept["patches"] == {str(frame.frame): frame.patches for frame in layer.frames}


def test_predict_on_a_video_file_runs_clip_and_draws_its_frames(model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4")  # 20 frames: grey brightening, a green square moving right
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


def write_brightening_video(path):
    """40 grey frames at 8 fps, each brighter than the last."""
    frames = np.stack([np.full((48, 64, 3), 5 * index, np.uint8) for index in range(40)])
    return encode_video(path, frames, 8)


def test_predict_explain_draws_large_frames_with_times_of_the_video(model_dir, tmp_path, capsys):
    """The picture of a video file is wide enough for 200-pixel kept frames and its legend speaks of seconds."""
    video = write_brightening_video(tmp_path / "clip.mp4")
    png = tmp_path / "timed.png"
    assert mist(["predict", "--model", str(model_dir), "--video", str(video), "--question", "what appeared?",
                 "--explain", str(png)]) == 0  # fmt: skip
    width, height = Image.open(png).size
    assert width >= 900 and height >= 600  # 4 kept frames of 200 pixels per layer, a label column


def test_predict_explain_decodes_the_video_once(model_dir, tmp_path, capsys, monkeypatch):
    import modeling_mist.video_processing_mist
    import training.explain

    video = write_brightening_video(tmp_path / "clip.mp4")
    opened = []
    for module in (training.explain, modeling_mist.video_processing_mist):
        decode = module.load_video_frames
        counted = lambda *args, decode=decode, **kwargs: opened.append(1) or decode(*args, **kwargs)  # noqa: E731
        monkeypatch.setattr(module, "load_video_frames", counted)
    assert mist(["predict", "--model", str(model_dir), "--video", str(video), "--question", "what appeared?",
                 "--explain", str(tmp_path / "once.png")]) == 0  # fmt: skip
    assert len(opened) == 1
    assert (tmp_path / "once.png").stat().st_size > 10_000


def explanation_layers(segment_scores, patch_scores) -> list[dict]:
    """Two ISTA layers keeping segments 3 and 2 (2 frames each, patches 0 and 1) with the given scores."""
    frames = [6, 7, 4, 5]
    return [
        {
            "segments": [3, 2],
            "segment_scores": segment_scores,
            "frames": frames,
            "patches": {frame: [0, 1] for frame in frames},
            "patch_scores": {frame: patch_scores for frame in frames},
        }
        for _ in range(2)
    ]


def draw(tmp_path, name, layers, timing=None) -> np.ndarray:
    frames = np.full((8, 48, 64, 3), 128, dtype=np.uint8)
    png = draw_explanation(frames, layers, 4, 2, tmp_path / name, title="q?", answers=[("cup", 0.7)], timing=timing)
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def test_patch_scores_are_a_heatmap_over_the_kept_frames(tmp_path):
    cold = draw(tmp_path, "cold.png", explanation_layers([0.1, 0.1, 0.3, 0.5], [0.0, 0.0, 0.0, 0.0]))
    hot = draw(tmp_path, "hot.png", explanation_layers([0.1, 0.1, 0.3, 0.5], [1.0, 0.0, 0.0, 0.0]))
    assert cold.shape == hot.shape
    # the top-left patch of each of the 8 kept frames (a 100 x 75 pixel cell of a 200-pixel frame) is tinted ...
    changed = np.abs(hot - cold).sum(axis=-1) > 30
    assert 8 * 60 * 45 < changed.sum() < 8 * 100 * 75 + 20_000
    # ... with the heatmap's top colour over the grey frame (alpha 0.6), not outlined
    top = np.array([int(255 * c) for c in colormaps[HEATMAP](1.0)[:3]])
    tinted = np.round(0.6 * top + 0.4 * 128)
    assert (np.abs(hot - tinted).sum(axis=-1) < 12).sum() > 8 * 60 * 45


def test_segment_strength_follows_the_score_and_times_label_the_axis(tmp_path):
    image = draw(tmp_path, "timeline.png", explanation_layers([0.0, 0.02, 0.18, 0.8], [0.4, 0.3, 0.2, 0.1]))
    for number, colour in enumerate(LAYER_COLORS[:2]):
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        faint = np.round(0.08 * rgb + 0.92 * 255)  # a segment scored 0 is drawn at 8 % strength
        assert layer_colour_pixels_in(image, rgb) > 5000  # the best segment at full strength, the layer label
        assert (np.abs(image - faint).sum(axis=-1) < 8).sum() > 5000


def layer_colour_pixels_in(image: np.ndarray, rgb: np.ndarray) -> int:
    return int((np.abs(image - rgb).sum(axis=-1) < 30).sum())


def test_selections_of_carries_patch_scores_and_times(model_dir, tiny_task):
    from transformers import AutoModel, AutoProcessor

    from modeling_mist.pipeline_mist import video_timing
    from training.predict import answer_question

    question = load_from_disk(str(tiny_task[0]))["test"][0]
    features = load_from_disk(str(tiny_task[1])).with_format("numpy")
    row = list(features["video_id"]).index(question["video_id"])
    model, processor = AutoModel.from_pretrained(model_dir).eval(), AutoProcessor.from_pretrained(model_dir)
    _, outputs, _ = answer_question(
        model, processor, question["question"],
        frame_features=features[row]["frame_features"].astype(np.float32),
        patch_features=features[row]["patch_features"].astype(np.float32),
        question_clip_embedding=np.asarray(question["question_clip_embedding"], dtype=np.float32),
    )  # fmt: skip
    timing = video_timing(80, [5 + 10 * frame for frame in range(8)], 4, fps=10)  # 8 s, 2 s segments
    for layer, scores in zip(selections_of(outputs, timing=timing), outputs.patch_scores):
        assert set(layer) == {
            "segments",
            "segment_scores",
            "frames",
            "patches",
            "patch_scores",
            "segment_times",
            "frame_times",
        }
        for rank, segment in enumerate(layer["segments"]):
            assert layer["segment_times"][segment] == [2.0 * segment, 2.0 * segment + 2.0]
            for position, frame in enumerate(layer["frames"][2 * rank : 2 * rank + 2]):
                assert layer["frame_times"][frame] == 0.5 + frame
                np.testing.assert_allclose(layer["patch_scores"][frame], scores[0, rank, position].tolist(), atol=1e-5)
    untimed = selections_of(outputs)
    assert untimed[0]["frame_times"] == {frame: frame for frame in untimed[0]["frames"]}


def test_selections_of_a_model_output_without_patch_selection():
    """A ModelOutput leaves out fields that are None: a STAR-style model (every patch kept) has no patch scores."""
    import torch

    from modeling_mist import MistConfig, MistForVideoQuestionAnswering

    text_config = {"vocab_size": 50, "hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 4,
                   "intermediate_size": 37, "max_position_embeddings": 32}  # fmt: skip
    config = MistConfig(
        text_config=text_config, num_frames=8, num_segments=4, grid_size=2, clip_hidden_size=16, hidden_size=32,
        box_hidden_size=8, intermediate_size=37, num_attention_heads=4, num_hidden_layers=1, num_ista_layers=1,
        num_selected_segments=2, max_question_length=5, use_patch_selection=False,
    )  # fmt: skip
    model = MistForVideoQuestionAnswering(config).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        outputs = model(
            frame_features=torch.randn(1, 8, 16, generator=generator),
            patch_features=torch.randn(1, 8, 4, 16, generator=generator),
            input_ids=torch.randint(1, 50, (1, 5), generator=generator),
            question_clip_embeds=torch.randn(1, 16, generator=generator),
            answer_input_ids=torch.randint(1, 50, (3, 4), generator=generator),
        )
    assert "patch_scores" not in outputs
    (layer,) = selections_of(outputs)
    assert layer["segments"] == outputs.segment_indices[0][0].tolist()
    assert all(patches == [0, 1, 2, 3] for patches in layer["patches"].values())
    assert all(scores is None for scores in layer["patch_scores"].values())
