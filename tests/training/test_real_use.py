"""A day of real use on a shared machine (issue 22): files others can read, no silent wrong runs, one-line errors
(exit 2: change the command, 1: the work failed, 130: interrupted), checks before the expensive step, nothing
lost or half-written on a full disk."""

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from safetensors import SafetensorError
from transformers import AutoModel, Trainer

from tests.helpers import TINY
from tests.training.training_testing import write_video
from training.cli.arguments import DEFAULT_SAVE_TOTAL_LIMIT, parse_with_preset
from modeling_mist import MistConfig, MistForVideoQuestionAnswering
from modeling_mist.video_processing_mist import MistVideoProcessor
from processing.file_utils import mode_for_new_files
from training.cli import main as mist
from training.errors import Interrupted, UsageError
from training.trainer import MistTrainer
from training.train import TrainOptions


def train_args(tiny_task, text_encoder_dir, output_dir, *extra):
    questions, features = tiny_task
    return [
        "train", "--dataset", str(questions), "--features", str(features), "--output-dir", str(output_dir),
        "--preset", "tiny", "--text-encoder", str(text_encoder_dir), "--clip_pretrained", "none",
        "--eval_split", "none", "--test_split", "none", *extra,
    ]  # fmt: skip


def error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def predict_args(model, tiny_task, *extra):
    video_id = load_from_disk(str(tiny_task[1]))["video_id"][0]
    return ["predict", "--model", str(model), "--features", str(tiny_task[1]), "--video-id", video_id, *extra]


def folder_bytes(folder) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


# ----- 1. files others can read -----------------------------------------------------------------------


def test_saved_models_get_the_umask_not_0600(tiny_model, tmp_path):
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tiny_model.path.iterdir() if path.is_file()}
    assert "model.safetensors" in modes and set(modes.values()) == {mode_for_new_files()}
    config = MistConfig(**{**TINY.model, "text_config": {**TINY.model["text_config"], "vocab_size": 40}})
    previous = os.umask(0o007)  # a group-shared folder
    try:
        MistForVideoQuestionAnswering(config).save_pretrained(tmp_path / "model")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "model" / "model.safetensors").stat().st_mode) == 0o660


# ----- 2. a full disk loses nothing -----------------------------------------------------------------


def test_a_full_disk_at_the_final_save_keeps_the_previous_model_and_results(
    tiny_model, tiny_task, text_encoder_dir, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "out"
    shutil.copytree(tiny_model.path, out)
    before = folder_bytes(out)
    real_save = Trainer._save

    def disk_fills_up(self, output_dir=None, state_dict=None):
        real_save(self, output_dir, state_dict)
        with open(f"{output_dir}/model.safetensors", "r+b") as weights:
            weights.truncate(100)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(Trainer, "_save", disk_fills_up)
    capsys.readouterr()
    assert mist(train_args(tiny_task, text_encoder_dir, out, "--overwrite-output-dir", "--max_steps", "1")) == 1
    lines = error_lines(capsys)
    assert lines[-1].startswith(f"mist train: {out}: no space for the final model (needs about ")
    assert lines[-1].endswith(
        f"nothing in {out} was replaced; free space: no checkpoint was saved to resume from (--save-strategy steps "
        "keeps them)"
    )
    assert folder_bytes(out) == before  # weights, config, card and results all the earlier run's
    assert not [entry.name for entry in out.iterdir() if entry.name.startswith("_")]


def test_no_room_for_the_model_is_refused_before_training(tiny_task, text_encoder_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("processing.file_utils.free_bytes", lambda path: 1000)
    monkeypatch.setattr(MistTrainer, "train", lambda *args, **kwargs: pytest.fail("trained although it cannot save"))
    out = tmp_path / "out"
    assert mist(train_args(tiny_task, text_encoder_dir, out)) == 1
    line = error_lines(capsys)[-1]
    assert line.startswith(f"mist train: {out}: not enough disk space for the final model: needs about ")
    assert line.endswith(" MB, 0.00 MB free")


def test_a_full_disk_at_a_checkpoint_names_the_one_to_resume(
    tiny_task, text_encoder_dir, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "out"
    saving = ["--save_strategy", "steps", "--save_steps", "1", "--max_steps", "3"]
    real_checkpoint = Trainer._save_checkpoint

    def full_at_step_two(self, model, trial):
        if self.state.global_step == 2:
            (out / "checkpoint-2").mkdir()
            (out / "checkpoint-2" / "model.safetensors").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_checkpoint(self, model, trial)

    monkeypatch.setattr(Trainer, "_save_checkpoint", full_at_step_two)
    capsys.readouterr()
    assert mist(train_args(tiny_task, text_encoder_dir, out, *saving)) == 1
    line = error_lines(capsys)[-1]
    assert line.startswith(f"mist train: {out}: the disk filled up while saving a checkpoint at step 2 (one needs ")
    assert line.endswith(
        f"free space: the last complete checkpoint, {out / 'checkpoint-1'}, is whole: continue with "
        "--resume-from-checkpoint last"
    )
    assert sorted(entry.name for entry in out.iterdir()) == ["checkpoint-1"]  # the cut-short one is gone
    monkeypatch.setattr(Trainer, "_save_checkpoint", real_checkpoint)
    assert mist(train_args(tiny_task, text_encoder_dir, out, *saving, "--resume-from-checkpoint", "last")) == 0
    AutoModel.from_pretrained(str(out))


# ----- 3. runs do what was asked or refuse ------------------------------------------------------------


def test_epochs_on_the_command_line_win_over_a_presets_max_steps():
    base = ["--output-dir", "x", "--preset", "tiny"]
    _, args, _ = parse_with_preset([*base, "--num-train-epochs", "30"], TrainOptions)
    assert (args.num_train_epochs, args.max_steps) == (30, -1)
    _, args, _ = parse_with_preset([*base, "--num-train-epochs", "30", "--max-steps", "7"], TrainOptions)
    assert args.max_steps == 7
    _, args, _ = parse_with_preset(base, TrainOptions)
    assert args.max_steps == TINY.training["max_steps"]


def test_checkpoints_are_capped_unless_told():
    _, args, _ = parse_with_preset(["--output-dir", "x", "--preset", "tiny"], TrainOptions)
    assert args.save_total_limit == DEFAULT_SAVE_TOTAL_LIMIT
    _, args, _ = parse_with_preset(["--output-dir", "x", "--preset", "agqa"], TrainOptions)
    assert args.save_total_limit == 2  # the preset's own
    _, args, _ = parse_with_preset(["--output-dir", "x", "--preset", "tiny", "--save-total-limit", "9"], TrainOptions)
    assert args.save_total_limit == 9


@pytest.mark.parametrize("epochs", ["-3", "0"])
def test_a_run_of_no_step_is_refused(epochs, tiny_task, text_encoder_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert mist(train_args(tiny_task, text_encoder_dir, out, "--num-train-epochs", epochs)) == 2
    assert error_lines(capsys)[-1] == (
        f"mist train: --num-train-epochs {epochs}: expected a positive number of epochs (or a positive --max-steps); "
        "this run would train no step"
    )
    assert not out.exists()


# ----- 4. one line where a traceback was ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("num_selected_patches", 99, "num_selected_patches=99 must be in [1, grid_size**2=4]"),
        ("hidden_size", "big", "Field 'hidden_size' expected int, got str (value: 'big')"),
        ("task", "bogus", "Field 'task' expected one of ('open-ended', 'multiple-choice'), got bogus"),
        ("num_segments", 3, "num_frames=8 must be divisible by num_segments=3"),
    ],
)
def test_a_hand_edited_invalid_config_is_one_line(key, value, reason, tiny_model, tiny_task, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model.path, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, key: value}))
    capsys.readouterr()
    assert mist(predict_args(model, tiny_task, "--question", "what?")) == 1
    assert error_lines(capsys) == [
        f"mist predict: {model / 'config.json'}: not a valid MIST config ({reason}); fix that value or save the "
        "model again"
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_a_missing_gpu_is_one_line(tiny_model, tiny_task, capsys):
    assert mist(predict_args(tiny_model.path, tiny_task, "--question", "what?", "--device", "cuda")) == 2
    assert error_lines(capsys) == [
        "mist predict: --device cuda: this machine has no usable CUDA GPU (torch.cuda.is_available() is False); "
        "pass --device cpu"
    ]
    assert mist(predict_args(tiny_model.path, tiny_task, "--question", "what?", "--device", "gpu")) == 2
    assert error_lines(capsys) == ["mist predict: --device gpu: not a device; expected cpu, cuda or cuda:N"]


def test_ctrl_c_in_training_names_the_checkpoint_to_resume(tiny_task, text_encoder_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    real_step = MistTrainer.training_step

    def interrupted_at_step_two(self, *args, **kwargs):
        if self.state.global_step == 2:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(MistTrainer, "training_step", interrupted_at_step_two)
    saving = ["--save_strategy", "steps", "--save_steps", "1"]
    assert mist(train_args(tiny_task, text_encoder_dir, out, *saving)) == 130
    assert error_lines(capsys)[-1] == (
        f"mist train: interrupted at step 2; the last complete checkpoint, {out / 'checkpoint-2'}, is whole: "
        "continue with --resume-from-checkpoint last"
    )
    with pytest.raises(Interrupted) as raised:  # --debug: the traceback, back to the KeyboardInterrupt
        mist(train_args(tiny_task, text_encoder_dir, tmp_path / "debug", *saving, "--debug"))
    assert isinstance(raised.value.__context__, KeyboardInterrupt)


def test_the_pipeline_names_features_of_the_wrong_width(tiny_model):
    from transformers import pipeline

    answerer = pipeline("video-question-answering", model=str(tiny_model.path), device="cpu")
    config = answerer.model.config
    wide = {"frame_features": np.zeros((8, 32), np.float32), "patch_features": np.zeros((8, 4, 32), np.float32)}
    with pytest.raises(ValueError) as raised:
        answerer({**wide, "question": "what did the person hold?"})
    assert str(raised.value) == (
        f"frame_features has shape (8, 32); this model reads (8, {config.clip_hidden_size}) = (num_frames, "
        "clip_hidden_size): pass features extracted for it (`mist extract-features --model MODEL`)"
    )


# ----- 5. a model its CLIP cannot feed says so before decoding --------------------------------------------


def with_clip(model_source, folder, clip_model_name: str):
    shutil.copytree(model_source, folder)
    for path in folder.glob("*.json"):
        text = path.read_text()
        if '"clip_model_name"' in text:
            data = json.loads(text)
            _replace_key(data, "clip_model_name", clip_model_name)
            path.write_text(json.dumps(data))
    return folder


def _replace_key(data, key, value):
    if isinstance(data, dict):
        for name in data:
            if name == key:
                data[name] = value
            else:
                _replace_key(data[name], key, value)


def test_a_model_whose_clip_cannot_feed_it_is_refused_before_decoding(tiny_model, tmp_path, capsys, monkeypatch):
    from transformers import pipeline

    video = write_video(tmp_path / "clip.mp4")
    monkeypatch.setattr(MistVideoProcessor, "load_video", lambda *a, **k: pytest.fail("decoded before refusing"))
    monkeypatch.setattr("modeling_mist.pipeline_mist.load_video_frames", lambda *a, **k: pytest.fail("decoded"))
    model = with_clip(tiny_model.path, tmp_path / "demo" / "model", "ViT-B-32-quickgelu")  # 512-d, model reads 16
    refusal = (
        "the model reads 16-d video features but its processor's CLIP (ViT-B-32-quickgelu) gives 512-d ones, so it "
        "cannot answer about a video file, only from stored features of its own width (frame_features, "
        "patch_features)"
    )
    capsys.readouterr()
    assert mist(["predict", "--model", str(model), "--video", str(video), "--question", "what?"]) == 2
    assert error_lines(capsys)[-1] == (
        f"mist predict: --model {model}: {refusal}; pass --features FEATURES --video-id ID with features of that width"
    )
    (tmp_path / "demo" / "demo_results.json").write_text("{}")
    (tmp_path / "demo" / "data" / "features").mkdir(parents=True)
    assert mist(["predict", "--model", str(model), "--video", str(video), "--question", "what?"]) == 2
    assert error_lines(capsys)[-1].endswith(
        f"; it is `mist demo`'s model: ask about a synthetic video with --features {tmp_path / 'demo/data/features'} "
        "--video-id ID"
    )
    answerer = pipeline("video-question-answering", model=str(model), device="cpu")
    with pytest.raises(ValueError, match=r"^the model reads 16-d video features but .* gives 512-d ones"):
        answerer(str(video), "what did the person hold?")


# ----- 9. text ------------------------------------------------------------------------------------


def test_predict_prints_questions_in_their_own_script(tiny_model, tiny_task, capsys):
    question = "正方形是什么颜色？"
    assert mist(predict_args(tiny_model.path, tiny_task, "--question", question, "--no-progress")) == 0
    out = capsys.readouterr().out
    assert f'"question": "{question}"' in out and "\\u" not in out


# ----- 10. odd candidates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "choices, message",
    [
        (["cup", "cup", "box"], "--choices: choices ['cup', 'cup', 'box'] repeat 'cup'; expected distinct answers"),
        (["cup", " "], "--choices: choice 1 is empty; expected every choice to be an answer in words"),
    ],
)
def test_repeated_or_empty_choices_are_refused(choices, message, tiny_model, tiny_task, capsys, monkeypatch):
    monkeypatch.setattr("training.cli.predict.load_trained", lambda *a, **k: pytest.fail("loaded before refusing"))
    assert mist(predict_args(tiny_model.path, tiny_task, "--question", "what?", "--choices", *choices)) == 2
    assert error_lines(capsys) == [f"mist predict: {message}"]


def test_top_k_zero_and_an_image_as_video_are_refused(tiny_model, tiny_task, tmp_path, capsys):
    from PIL import Image

    with pytest.raises(SystemExit) as exited:
        mist(predict_args(tiny_model.path, tiny_task, "--question", "what?", "--top-k", "0"))
    assert exited.value.code == 2
    assert error_lines(capsys)[-1] == "mist predict: error: --top-k 0: expected at least 1 answer to print"
    Image.new("RGB", (32, 32)).save(tmp_path / "photo.png")
    photo = ["predict", "--model", str(tiny_model.path), "--video", str(tmp_path / "photo.png"), "--question", "what?"]
    assert mist(photo) == 2
    assert error_lines(capsys)[-1].startswith(
        f"mist predict: {tmp_path / 'photo.png'}: an image, not a video; expected a video file (.mp4, .webm, "
    )


# ----- 11. the app takes --debug like every command --------------------------------------------------


def test_mist_app_takes_debug(tmp_path, capsys):
    with pytest.raises(UsageError):
        mist(["app", "--model", str(tmp_path / "missing"), "--device", "cpu", "--debug"])
    with pytest.raises(SystemExit):
        mist(["app", "--help"])
    assert "--debug" in capsys.readouterr().out


# ----- 8. the fine-tuning example is as forgiving as mist train ----------------------------------------------


def test_the_example_reads_minilm_and_names_the_sizes_that_fit(tiny_task, clip_model_name, tmp_path, capsys):
    from training.examples.finetune_with_trainer import finetune
    from training.examples.finetune_with_trainer import main as example

    questions = tmp_path / "train.jsonl"
    rows = load_from_disk(str(tiny_task[0]))["train"].remove_columns("question_clip_embedding").select(range(8))
    rows.to_json(str(questions))
    arguments = ["--questions", str(questions), "--features", str(tiny_task[1]), "--output-dir", str(tmp_path / "o")]
    assert example([*arguments, "--text-encoder", "minilm", "--clip-model", clip_model_name]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].split(": ", 1)[1] == (
        "the model of the agqa preset cannot read them (num_selected_patches=12 must be "
        "in [1, grid_size**2=4]): pass --config-overrides "
        "clip_hidden_size=16,grid_size=2,num_frames=8,num_selected_patches=4"
    )
    sizes = dict(num_selected_patches=4, num_segments=4, hidden_size=32, intermediate_size=37, num_attention_heads=4,
                 crop_size=224, max_question_length=12, max_answer_length=6)  # fmt: skip
    trainer, _ = finetune(
        str(questions), str(tiny_task[1]), "minilm", str(tmp_path / "out"), clip_model=clip_model_name,
        clip_pretrained=None, config_kwargs=sizes, max_steps=1, use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    assert trainer.model.config.text_config.hidden_size == 384  # all-MiniLM-L6-v2, read from the package


# ----- 11. help that tells, and comes quickly ------------------------------------------------------------


def test_help_of_prepare_dataset_and_app_loads_no_torch_and_describes_the_formats():
    from tests.helpers import run_python

    from training.cli.prepare_dataset import FORMATS

    script = (
        "import sys, contextlib, io\n"
        "from training.cli import main\n"
        "for command in ('prepare-dataset', 'app'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        main([command, '--help'])\n"
        "    print(command, 'torch' in sys.modules, '--debug' in out.getvalue())\n"
    )
    result = run_python(["-c", script], cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["prepare-dataset False True", "app False True"]
    assert all(f"  {name}  " in FORMATS for name in ("nextqa", "star", "agqa", "envqa"))


def test_train_help_shows_each_presets_training_defaults(capsys):
    assert mist(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "  tiny: 4 steps, learning rate 0.001, batch 4, evaluation no, no checkpoints" in out
    agqa = "  agqa: 30 epochs, learning rate 3e-05, batch 128, evaluation epoch, checkpoints every epoch (keeps 2)"
    assert agqa in out


def test_extract_features_help_says_the_clip_weights_are_a_download(capsys):
    with pytest.raises(SystemExit):
        mist(["extract-features", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "downloaded from the Hugging Face Hub on first use" in out and "a local checkpoint FILE (offline)" in out


@pytest.mark.parametrize("frozen", [True, False])
def test_a_checkpoint_holds_optimizer_state_only_for_what_trains(frozen, tiny_task, text_encoder_dir, tmp_path):
    out = tmp_path / "out"
    flags = ["--freeze_text_encoders", str(frozen).lower(), "--max_steps", "1", "--save_strategy", "steps",
             "--save_steps", "1"]  # fmt: skip
    assert mist(train_args(tiny_task, text_encoder_dir, out, *flags)) == 0
    checkpoint = out / "checkpoint-1"
    model = MistForVideoQuestionAnswering.from_pretrained(checkpoint)
    encoders = ("mist.question_encoder.", "answer_encoder.")
    trains = {name: p for name, p in model.named_parameters() if not (frozen and name.startswith(encoders))}
    state = torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True)["state"]
    assert len(state) == len(trains)  # AdamW's moments for every parameter that trains, none for a frozen one
    assert sum(moments["exp_avg"].numel() for moments in state.values()) == sum(p.numel() for p in trains.values())
    weights = AutoModel.from_pretrained(out).state_dict()  # the final model: every weight, frozen ones too
    assert set(weights) == set(model.state_dict()) and any(name.startswith(encoders) for name in weights)


def test_the_picture_draws_any_script_it_has_a_font_for_and_names_what_it_lacks(tmp_path, caplog):
    from training.explain import _installed_fonts, draw_explanation, placeholder_frames, text_fonts

    fonts = _installed_fonts()
    assert text_fonts("what did the person hold?") == list(fonts)  # the default font first, then the fallbacks
    layers = [
        {"segments": [0], "segment_scores": [0.7, 0.1, 0.1, 0.1], "frames": [0, 1], "patches": {0: [0], 1: [1]},
         "patch_scores": {0: [0.6, 0.2, 0.1, 0.1], 1: [0.1, 0.6, 0.2, 0.1]}, "segment_times": {0: [0, 2]},
         "frame_times": {0: 0.5, 1: 1.5}}
    ]  # fmt: skip
    question = "正方形是什么颜色？🙂"
    lacking = "".join(c for c in dict.fromkeys(question) if not any(ord(c) in chars for chars in fonts.values()))
    with caplog.at_level("WARNING", logger="training.explain"):
        path = draw_explanation(placeholder_frames(8), layers, 4, 2, tmp_path / "x.png", title=question)
    assert path.stat().st_size > 10_000
    warnings = [record.getMessage() for record in caplog.records if record.name == "training.explain"]
    if lacking:  # this machine lacks a CJK or emoji font: said once, naming the characters
        assert warnings == [
            f"the explanation picture has no font for {lacking}: they are drawn as empty boxes; install a font that "
            "has them (CJK: fonts-noto-cjk; emoji: fonts-noto-color-emoji) and run again"
        ]
    else:
        assert warnings == []


# ----- 12. what the picture and the app show ------------------------------------------------------------


def test_kept_cells_stay_outlined_over_a_hot_heatmap(tmp_path):
    from PIL import Image

    from training.explain import draw_explanation

    def drawn(kept: list[int]) -> np.ndarray:
        layer = {"segments": [0], "segment_scores": [1.0, 0.0, 0.0, 0.0], "frames": [0, 1],
                 "patches": {0: kept, 1: kept}, "patch_scores": {0: [1.0, 0, 0, 0], 1: [1.0, 0, 0, 0]}}  # fmt: skip
        frames = np.full((8, 48, 64, 3), 128, dtype=np.uint8)
        path = draw_explanation(frames, [layer], 4, 2, tmp_path / f"kept{len(kept)}.png", title="q?")
        return np.asarray(Image.open(path).convert("RGB")).astype(int)

    outlined, bare = drawn([0]), drawn([])
    white = (outlined.min(axis=-1) > 235) & (bare.min(axis=-1) <= 235)  # white only where the outline is
    assert white.sum() > 2 * 2 * (100 + 75)  # around the hottest cell of both kept frames


def test_the_app_header_reads_plainly():
    from types import SimpleNamespace

    from training.app import VideoQuestionAnswerer

    config = SimpleNamespace(name_or_path="m", multiple_choice=False, answer_vocabulary=["a", "b"], num_frames=8,
                             num_segments=4, grid_size=2)  # fmt: skip
    answerer = VideoQuestionAnswerer.__new__(VideoQuestionAnswerer)
    answerer.config, answerer._sample_of = config, {}
    assert answerer.describe_model() == (
        "Model `m` (open-ended over 2 answers, choices optional); 8 frames in 4 segments, 2x2 patches per frame."
    )


def test_the_app_says_which_coloured_square_is_which_object(tmp_path):
    from types import SimpleNamespace

    from training.app import VideoQuestionAnswerer
    from training.app_samples import Sample
    from training.demo.synthetic_dataset import OBJECT_WORDS, SyntheticVideoQA
    from tests.training.training_testing import tiny_task_config

    generator = SyntheticVideoQA(tiny_task_config())
    config = SimpleNamespace(name_or_path="demo", multiple_choice=False, answer_vocabulary=list(OBJECT_WORDS),
                             num_frames=8, num_segments=4, grid_size=2)  # fmt: skip
    answerer = VideoQuestionAnswerer.__new__(VideoQuestionAnswerer)
    sample = Sample("s", "v.mp4", "q?", frame_features=np.zeros((8, 16)), generator=generator)
    answerer.config, answerer._sample_of = config, {"digest": sample}
    legend = answerer.describe_model().split("\n\n")[-1]
    red, green, blue = generator.palette()[0].tolist()
    assert legend.startswith(
        f'Objects in the sample videos: <span style="color:#{red:02x}{green:02x}{blue:02x}">&#9632;</span> '
        f"{OBJECT_WORDS[0]}, "
    )
    assert legend.count("&#9632;") == len(OBJECT_WORDS)
    frames = generator.render_frames("test_00000")
    drawn = {tuple(pixel) for pixel in frames.reshape(-1, 3).tolist()} - {(200, 200, 200)}
    assert drawn <= {tuple(colour) for colour in generator.palette().tolist()}  # the squares use these colours
