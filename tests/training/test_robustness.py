"""What a real user hits on a shared machine over many days: re-runs that never destroy work, resuming,
one-line errors naming the bad file (exit 2: change the command, 1: a file is broken), feature sizes read
from the features before any expensive step, results written next to the model, progress bars."""

import json
import logging
import re
import shutil

import pytest
from safetensors.torch import load_file
from transformers import AutoModel

from configuration.presets import AGQA
from tests.helpers import TINY, run_python
from tests.training.training_testing import question_rows, write_features, write_jsonl, write_video
from training.cli import main as mist
from training.cli.arguments import fit_training_defaults, parse_with_preset
from training.cli.train import take_debug_flag
from training.errors import BrokenFileError
from training.model_config import fit_config_to_features
from training.train import TrainOptions


def train_args(tiny_task, text_encoder_dir, output_dir, *extra, dataset=None, features=None):
    questions, default_features = tiny_task
    return [
        "train", "--dataset", str(dataset or questions), "--features", str(features or default_features),
        "--output-dir", str(output_dir), "--preset", "tiny", "--text-encoder", str(text_encoder_dir),
        "--clip_pretrained", "none", "--eval_split", "none", "--test_split", "none", *extra,
    ]  # fmt: skip


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


# ----- re-runs and resuming ---------------------------------------------------------------------------


def test_training_into_a_folder_with_a_model_is_refused_and_leaves_it_alone(
    tiny_model, tiny_task, text_encoder_dir, capsys
):
    weights = (tiny_model.path / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert mist(train_args(tiny_task, text_encoder_dir, tiny_model.path, "--max_steps", "1")) == 2
    line = error_line(capsys)
    assert line.startswith(f"mist train: --output-dir {tiny_model.path} already holds a trained model (README.md, ")
    assert line.endswith(
        "); pass --resume-from-checkpoint last to continue its training, --overwrite-output-dir to replace it, "
        "or choose another --output-dir"
    )
    assert (tiny_model.path / "model.safetensors").read_bytes() == weights


def test_resume_last_without_checkpoints_says_how_to_get_them(tiny_model, tiny_task, text_encoder_dir, capsys):
    capsys.readouterr()
    code = mist(train_args(tiny_task, text_encoder_dir, tiny_model.path, "--resume_from_checkpoint", "last"))
    assert code == 2
    assert error_line(capsys) == (
        f"mist train: --resume-from-checkpoint last: {tiny_model.path} holds no checkpoint-* folder; a run leaves "
        "checkpoints with --save-strategy steps or epoch. Pass a checkpoint folder, or start again with "
        "--overwrite-output-dir"
    )
    assert (
        mist(train_args(tiny_task, text_encoder_dir, tiny_model.path, "--resume-from-checkpoint", "/no/such/ckpt")) == 2
    )
    assert error_line(capsys) == (
        "mist train: --resume-from-checkpoint /no/such/ckpt: no such folder; pass a checkpoint-* folder or 'last'"
    )


def test_resume_last_continues_from_the_newest_complete_checkpoint(
    tiny_task, text_encoder_dir, tmp_path, caplog, capsys
):
    out = tmp_path / "run"
    saving = ["--save_strategy", "steps", "--save_steps", "1"]
    assert mist(train_args(tiny_task, text_encoder_dir, out, "--max_steps", "2", *saving)) == 0
    (out / "checkpoint-2" / "trainer_state.json").unlink()  # as if the run was killed while writing checkpoint-2
    assert mist(train_args(tiny_task, text_encoder_dir, out, "--max_steps", "3", *saving)) == 2  # a re-run is refused
    assert "already holds a trained model" in error_line(capsys)
    caplog.set_level(logging.WARNING)
    resume = ["--resume_from_checkpoint", "last"]
    assert mist(train_args(tiny_task, text_encoder_dir, out, "--max_steps", "3", *saving, *resume)) == 0
    assert [record.getMessage() for record in caplog.records if "incomplete" in record.getMessage()] == [
        f"{out / 'checkpoint-2'} is incomplete (its run was killed while writing it): "
        f"resuming from {out / 'checkpoint-1'}"
    ]
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and state["log_history"][0]["step"] == 1  # steps 2 and 3 were redone on top of 1


def test_overwrite_replaces_the_model_and_a_killed_save_keeps_the_old_one(
    tiny_model, tiny_task, text_encoder_dir, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    shutil.copytree(tiny_model.path, out)
    (out / "checkpoint-5").mkdir()
    (out / "checkpoint-5" / "trainer_state.json").write_text("{}")  # a stale checkpoint of the earlier run
    old_weights = (out / "model.safetensors").read_bytes()
    overwrite = ["--overwrite-output-dir", "--max_steps", "1", "--learning_rate", "0.1"]

    from transformers import Trainer

    real_save = Trainer._save

    def killed_while_saving(self, output_dir=None, state_dict=None):
        real_save(self, output_dir, state_dict)
        (tmp_path / "partial").write_bytes(b"")
        with open(f"{output_dir}/model.safetensors", "r+b") as weights:
            weights.truncate(100)  # half written ...
        raise KeyboardInterrupt  # ... when the job is killed

    monkeypatch.setattr(Trainer, "_save", killed_while_saving)
    assert mist(train_args(tiny_task, text_encoder_dir, out, *overwrite)) == 130  # Ctrl-C: one line, exit 130
    assert (out / "model.safetensors").read_bytes() == old_weights  # the finished model is untouched
    AutoModel.from_pretrained(str(out))
    assert not (out / "checkpoint-5").exists()  # --overwrite-output-dir deletes stale checkpoints first

    monkeypatch.setattr(Trainer, "_save", real_save)
    assert mist(train_args(tiny_task, text_encoder_dir, out, *overwrite)) == 0
    new, old = load_file(str(out / "model.safetensors")), load_file(str(tiny_model.path / "model.safetensors"))
    assert any(not new[name].equal(old[name]) for name in new)
    assert not [entry.name for entry in out.iterdir() if entry.name.startswith(("_", "."))]  # no staging leftovers


# ----- one-line errors ----------------------------------------------------------------------------


def test_empty_questions_file(tiny_task, text_encoder_dir, tmp_path, capsys):
    (tmp_path / "questions").mkdir()
    (tmp_path / "questions" / "train.jsonl").write_text("")
    assert mist(train_args(tiny_task, text_encoder_dir, tmp_path / "out", dataset=tmp_path / "questions")) == 1
    assert error_line(capsys) == (
        f"mist train: {tmp_path / 'questions' / 'train.jsonl'}: the file is empty, expected one question per line; "
        "convert the annotations again with `mist prepare-dataset`"
    )
    assert not (tmp_path / "out").exists()
    arguments = train_args(tiny_task, text_encoder_dir, tmp_path / "out", dataset=tmp_path / "questions")
    with pytest.raises(BrokenFileError, match="the file is empty"):  # --debug: the exception and its traceback
        mist([*arguments, "--debug"])
    assert take_debug_flag(["--debug", "--max_steps", "3"]) == (["--max_steps", "3"], True)
    assert take_debug_flag(["--debug", "underflow_overflow"]) == (
        ["--debug", "underflow_overflow"],
        False,
    )  # transformers'


def test_questions_about_videos_the_features_lack_are_refused_naming_the_dataset(
    tiny_task, text_encoder_dir, tmp_path, capsys
):
    rows = [{**row, "video_id": f"missing-{row['video_id']}"} for row in question_rows(tiny_task[0], "train")]
    questions = write_jsonl(tmp_path / "questions" / "train.jsonl", rows)
    assert mist(train_args(tiny_task, text_encoder_dir, tmp_path / "out", dataset=questions.parent)) == 2
    assert error_line(capsys) == (
        f"mist train: --dataset {questions.parent}: no usable training questions: train: 0/48 questions used; "
        "48 without video features (e.g. ['missing-train_00000', 'missing-train_00001', 'missing-train_00002'])"
    )
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_truncated_or_garbage_features_arrow_file(damage, tiny_task, text_encoder_dir, tmp_path, capsys):
    features = tmp_path / "features"
    shutil.copytree(tiny_task[1], features)
    arrow = next(features.glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:3000] if damage == "truncated" else b"not an arrow file" * 100)
    assert mist(train_args(tiny_task, text_encoder_dir, tmp_path / "out", features=features)) == 1
    line = error_line(capsys)
    assert line.startswith(f"mist train: {arrow}: cannot be read (")
    assert line.endswith(
        f"); the saved dataset in {features} is truncated or corrupt: "
        "extract the features again with `mist extract-features`"
    )


def test_features_folder_without_state_json(tiny_task, text_encoder_dir, tmp_path, capsys):
    features = tmp_path / "features"
    shutil.copytree(tiny_task[1], features)
    (features / "state.json").unlink()
    assert mist(train_args(tiny_task, text_encoder_dir, tmp_path / "out", features=features)) == 1
    assert error_line(capsys) == (
        f"mist train: {features}: not a saved dataset (no state.json or dataset_dict.json); expected the folder that "
        "`mist extract-features --output-dir` writes (state.json, dataset_info.json, data-*.arrow)"
    )


def test_model_folder_without_weights(tiny_model, tiny_task, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model.path / name, model / name)
    (model / "checkpoint-2").mkdir()
    shutil.copy(tiny_model.path / "model.safetensors", model / "checkpoint-2" / "model.safetensors")
    arguments = ["evaluate", "--model", str(model), "--dataset", str(tiny_task[0]), "--features", str(tiny_task[1])]
    assert mist(arguments) == 1
    assert error_line(capsys) == (
        f"mist evaluate: {model}: no weights (model.safetensors), only checkpoint-2, config.json, "
        "processor_config.json, "
        "tokenizer.json, tokenizer_config.json: was its training run killed before it saved the model?; its newest "
        f"checkpoint with weights is {model / 'checkpoint-2'}"
    )
    with pytest.raises(BrokenFileError):  # --debug: the exception itself, with its traceback
        mist([*arguments, "--debug"])


def test_mistyped_local_folders_are_not_reported_as_hub_repositories(tiny_model, tiny_task, tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    typo = tmp_path / "runs" / "mdoel"
    assert mist(["predict", "--model", str(typo), "--video", "clip.mp4", "--question", "what?"]) == 2
    assert (
        error_line(capsys)
        == f"mist predict: --model {typo}: no such file or folder; {tmp_path / 'runs'}/ exists and holds: nothing"
    )
    code = mist(
        ["evaluate", "--model", str(tiny_model.path), "--dataset", str(tiny_task[0]), "--features", "./featurez"]
    )
    assert code == 2 and error_line(capsys) == "mist evaluate: --features ./featurez: no such file or folder"
    # `runs/mdoel` could be a Hub id: it is tried there (offline here), and the message says both
    (tmp_path / "runs" / "model").mkdir()
    result = run_python(
        ["-m", "training.cli", "evaluate", "--model", "runs/mdoel", "--dataset", "d", "--features", "f"], cwd=tmp_path
    )
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "mist evaluate: --model runs/mdoel: no such local folder, and no model on the Hub by that id could be loaded ("
    )
    assert line.endswith("); runs/ exists and holds: model")


@pytest.mark.parametrize("missing", ["--dataset", "--features"])
def test_train_without_data_says_which_flag_is_missing(missing, tmp_path, capsys):
    given = {"--dataset": "questions.jsonl", "--features": "features", "--output-dir": str(tmp_path / "out")}
    del given[missing]
    assert mist(["train", *(arg for pair in given.items() for arg in pair)]) == 2
    assert error_line(capsys) == f"mist train: {missing} is required"
    assert not (tmp_path / "out").exists()


def test_save_strategy_no_alone_turns_off_the_presets_best_model_reload(caplog):
    caplog.set_level(logging.INFO)
    _, args, _ = parse_with_preset(["--preset", "agqa", "--output_dir", "o", "--save_strategy", "no"], TrainOptions)
    assert args.load_best_model_at_end is False and args.eval_strategy == "epoch"
    assert "save_strategy=no, eval_strategy=epoch: the agqa preset's load_best_model_at_end is off" in caplog.text
    _, args, _ = parse_with_preset(["--preset", "agqa", "--output_dir", "o"], TrainOptions)
    assert args.load_best_model_at_end is True  # untouched when the strategies still match


def test_contradicting_strategies_given_explicitly_are_one_line(capsys):
    code = mist(["train", "--preset", "agqa", "--dataset", "d", "--features", "f", "--output-dir", "o",
                 "--save_strategy", "no", "--load_best_model_at_end", "true"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "mist train: --load_best_model_at_end requires the save and eval strategy to match, "
        'except when --save_strategy="best"'
    )


def test_data_loader_workers_fit_the_machine(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert fit_training_defaults(AGQA, [])["dataloader_num_workers"] == 1
    assert fit_training_defaults(AGQA, ["--dataloader_num_workers", "8"])["dataloader_num_workers"] == 8  # asked for
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)))
    assert fit_training_defaults(AGQA, [])["dataloader_num_workers"] == 8


# ----- feature sizes --------------------------------------------------------------------------------


def test_features_that_cannot_fit_the_preset_are_refused_before_any_work(tiny_task, tmp_path, capsys, monkeypatch):
    ids = sorted({row["video_id"] for row in question_rows(tiny_task[0], "train")})
    features = write_features(tmp_path / "features8", ids, num_frames=8, num_patches=16, width=512)

    def too_late(*args, **kwargs):
        raise AssertionError("the tokenizer was loaded before the features were checked")

    monkeypatch.setattr("training.train.AutoTokenizer.from_pretrained", too_late)
    code = mist(["train", "--dataset", str(tiny_task[0]), "--features", str(features),
                 "--output-dir", str(tmp_path / "o"), "--preset", "nextqa"])  # fmt: skip
    assert code == 2
    assert error_line(capsys) == (
        f"mist train: --features {features} (8 frames x 16 patches of 512-d CLIP features): the model of the nextqa "
        "preset cannot read them (num_frames=8 must be divisible by num_segments=32): pass --config-overrides "
        "num_frames=8,num_segments=8"
    )


def test_features_of_other_sizes_adapt_the_preset_and_evaluate_checks_them(
    tiny_task, text_encoder_dir, tmp_path, caplog, capsys
):
    ids = sorted({row["video_id"] for split in ("train", "test") for row in question_rows(tiny_task[0], split)})
    wider = write_features(tmp_path / "features24", ids, num_frames=16, num_patches=9, width=24)
    assert mist(train_args(tiny_task, text_encoder_dir, tmp_path / "o", features=wider)) == 2
    assert error_line(capsys) == (
        f"mist train: --dataset {tiny_task[0]}: split 'train' has 16-d question_clip_embedding but the video features "
        "are 24-d: embed the questions with the CLIP that made the features (`mist extract-features --questions FILE "
        "--questions-output FILE`), or drop the column and the processor's CLIP computes it"
    )

    features = write_features(tmp_path / "features", ids, num_frames=16, num_patches=9, width=16)
    caplog.set_level(logging.INFO, logger="training.train")
    out = tmp_path / "out"
    assert mist(train_args(tiny_task, text_encoder_dir, out, "--max_steps", "1", features=features)) == 0
    assert [r.getMessage() for r in caplog.records if "fitted" in r.getMessage()] == [
        "config fitted to the features: grid_size=3 instead of 2 (the tiny preset): "
        "the features have 9 patches per frame",
        "config fitted to the features: num_frames=16 instead of 8 (the tiny preset): "
        "the features have 16 frames per video",
    ]
    config = json.loads((out / "config.json").read_text())
    assert (config["num_frames"], config["grid_size"], config["clip_hidden_size"]) == (16, 3, 16)

    capsys.readouterr()
    assert mist(["evaluate", "--model", str(out), "--dataset", str(tiny_task[0]), "--features", str(tiny_task[1])]) == 2
    assert error_line(capsys) == (
        f"mist evaluate: --features {tiny_task[1]}: 8 frames x 4 patches of 16-d CLIP features, but the model {out} "
        "reads 16 frames x 9 patches of 16-d CLIP features (its config.json: num_frames, grid_size**2, "
        f"clip_hidden_size); extract features for this model with `mist extract-features VIDEOS --model {out} "
        "--output-dir DIR`"
    )


def test_fitting_rules():
    tiny = dict(TINY.model)
    fitted, notes = fit_config_to_features(dict(AGQA.model), 8, 16, 768, set(), "agqa")
    assert (fitted["num_frames"], fitted["clip_hidden_size"]) == (8, 768) and notes == [
        "clip_hidden_size=768 instead of 512 (the agqa preset): the features are 768-d",
        "num_frames=8 instead of 32 (the agqa preset): the features have 8 frames per video",
    ]
    with pytest.raises(ValueError) as raised:
        fit_config_to_features(tiny, 8, 4, 24, {"clip_hidden_size"}, "tiny")
    assert str(raised.value) == (
        "the features are 24-d, but --config-overrides sets clip_hidden_size=16: pass --config-overrides "
        "clip_hidden_size=24 or other features"
    )
    with pytest.raises(ValueError) as raised:
        fit_config_to_features(dict(AGQA.model), 32, 4, 512, set(), "agqa")
    assert str(raised.value) == (
        "the model of the agqa preset cannot read them (num_selected_patches=12 must be in [1, grid_size**2=4]): "
        "pass --config-overrides grid_size=2,num_selected_patches=4"
    )
    with pytest.raises(ValueError, match="6 patches per frame, not a square grid"):
        fit_config_to_features(tiny, 8, 6, 16, set(), "tiny")
    # the tiny preset has 4 segments of 2 frames: the fix keeps 2 frames per segment when it can
    with pytest.raises(
        ValueError,
        match=r"by num_segments=4\): pass --config-overrides num_frames=10,num_segments=5$",
    ):
        fit_config_to_features(tiny, 10, 4, 16, set(), "tiny")
    with pytest.raises(ValueError, match="pass --config-overrides num_frames=9,num_segments=3$"):
        fit_config_to_features(tiny, 9, 4, 16, set(), "tiny")
    with pytest.raises(
        ValueError,
        match="12 frames per video, but --config-overrides sets num_frames=8: pass --config-overrides num_frames=12 or",
    ):
        fit_config_to_features(tiny, 12, 4, 16, {"num_frames"}, "tiny")  # 12 would fit, but the user said 8


def test_fitting_follows_the_variant_options():
    from configuration.presets import NEXTQA, STAR

    # NExT-QA: a temporal encoder (one frame per segment) and the raw frame as a patch candidate (one width)
    with pytest.raises(ValueError) as raised:
        fit_config_to_features(dict(NEXTQA.model), 8, 16, 768, set(), "nextqa")
    assert str(raised.value) == (
        "the model of the nextqa preset cannot read them (num_frames=8 must be divisible by num_segments=32): pass "
        "--config-overrides clip_hidden_size=768,num_frames=8,num_segments=8,hidden_size=768"
    )
    with pytest.raises(ValueError) as raised:
        fit_config_to_features(dict(NEXTQA.model), 32, 9, 512, set(), "nextqa")  # 9 patches + the frame < 16 kept
    assert str(raised.value) == (
        "the model of the nextqa preset cannot read them (num_selected_patches=16 must be in [1, grid_size**2 + 1 (the "
        "frame)=10]): pass --config-overrides grid_size=3,num_selected_patches=10"
    )
    # STAR keeps every patch: any grid fits
    fitted, notes = fit_config_to_features(dict(STAR.model), 32, 4, 512, set(), "star")
    assert fitted["grid_size"] == 2 and notes == [
        "grid_size=2 instead of 4 (the star preset): the features have 4 patches per frame"
    ]


# ----- where results go, progress -------------------------------------------------------------------


def test_evaluate_writes_next_to_the_model_and_shows_progress(tiny_model, tiny_task, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "questions"
    rows = [
        {k: v for k, v in row.items() if k != "question_clip_embedding"} for row in question_rows(tiny_task[0], "test")
    ]
    write_jsonl(folder / "test.jsonl", rows)  # no CLIP embeddings: the processor computes them
    capsys.readouterr()
    assert (
        mist(["evaluate", "--model", str(tiny_model.path), "--dataset", str(folder), "--features", str(tiny_task[1])])
        == 0
    )
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["questions"]  # nothing in the current directory
    results = json.loads((tiny_model.path / "eval" / "results_test.json").read_text())
    assert results["predictions_file"] == str(tiny_model.path / "eval" / "predictions_test.jsonl")
    assert len((tiny_model.path / "eval" / "predictions_test.jsonl").read_text().splitlines()) == 16
    err = capsys.readouterr().err
    distinct = len({row["question"] for row in rows})
    assert re.search(
        rf"CLIP question embeddings \(test\): 100%\|[^|]*\| {distinct}/{distinct} ", err
    )  # each question once
    assert re.search(r"\r100%\|[^|]*\| 1/1 \[", err)  # the Trainer's evaluation loop: 16 questions, one batch of 64


def test_evaluate_results_go_where_told_and_never_into_the_current_directory(tiny_model):
    from types import SimpleNamespace

    from training.cli.evaluate import output_dir_for

    assert output_dir_for(SimpleNamespace(model=str(tiny_model.path), output_dir=None)) == tiny_model.path / "eval"
    assert (
        output_dir_for(SimpleNamespace(model="someone/mist-agqa", output_dir=None)) is None
    )  # a Hub model: printed only
    assert str(output_dir_for(SimpleNamespace(model="someone/mist-agqa", output_dir="results"))) == "results"


def test_predict_shows_clip_progress_and_equals_the_processor(tiny_model, tmp_path, capsys):
    from training.cli.predict import embed_video
    from training.factory import load_trained

    video = write_video(tmp_path / "clip.mp4")
    model, processor = load_trained(str(tiny_model.path))
    capsys.readouterr()
    _, _, frame_features, patch_features = embed_video(
        processor, str(video), model.config.num_frames, model.config.num_segments, "cpu", progress=True
    )
    assert re.search(r"CLIP features of clip.mp4: 100%\|[^|]*\| 8/8", capsys.readouterr().err)
    expected = processor.video_processor([str(video)], return_tensors="pt")
    assert frame_features.shape == (8, 16) and patch_features.shape == (8, 4, 16)
    assert abs(expected["frame_features"][0].numpy() - frame_features).max() < 1e-5
    assert abs(expected["patch_features"][0].numpy() - patch_features).max() < 1e-5
