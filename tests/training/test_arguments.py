"""Presets give defaults; transformers' own flags and --config_overrides win."""

from dataclasses import dataclass

import pytest

from configuration.presets import AGQA, NEXTQA, PRESETS, get_preset, minilm_path
from modeling_mist import MistConfig
from training.cli.arguments import parse_with_preset
from training.model_config import build_model_config_kwargs, parse_config_overrides


@dataclass
class ScriptArguments:
    dataset: str | None = None
    preset: str | None = None


def test_command_line_overrides_preset_training_defaults():
    script_args, training_args, preset = parse_with_preset(
        ["--preset", "agqa", "--output-dir", "out", "--max_steps", "7", "--learning_rate", "1e-4"], ScriptArguments
    )
    assert preset is AGQA and script_args.preset == "agqa"
    assert training_args.max_steps == 7 and training_args.learning_rate == 1e-4
    assert training_args.per_device_train_batch_size == 128 and training_args.max_grad_norm == 12.0
    assert training_args.lr_scheduler_type == "cosine" and training_args.output_dir == "out"


def test_preset_chosen_from_the_data_when_not_named():
    _, training_args, preset = parse_with_preset(["--output_dir", "o"], ScriptArguments, lambda args: "nextqa")
    assert preset is NEXTQA and training_args.learning_rate == 4e-5
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("msrvtt")


def test_config_overrides():
    assert parse_config_overrides("hidden_size=256,dropout=0.1,train_selection=topk") == {
        "hidden_size": 256,
        "dropout": 0.1,
        "train_selection": "topk",
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_config_overrides("hidden_size")
    kwargs = build_model_config_kwargs(get_preset("tiny"), "hidden_size=64,text_config.num_hidden_layers=1")
    assert kwargs["hidden_size"] == 64 and kwargs["text_config"]["num_hidden_layers"] == 1
    assert get_preset("tiny").model["text_config"]["num_hidden_layers"] == 2  # the preset itself is untouched


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config(name):
    config = MistConfig(**build_model_config_kwargs(get_preset(name)))
    assert config.sequence_length == config.num_question_tokens + config.num_video_tokens


def test_agqa_preset_is_the_paper_setting():
    config = MistConfig(**build_model_config_kwargs(AGQA))
    assert (config.hidden_size, config.intermediate_size, config.num_attention_heads) == (512, 1024, 8)
    assert (config.max_question_length, config.max_answer_length, config.dropout) == (30, 38, 0.3)
    assert AGQA.training["learning_rate"] == 3e-5 and AGQA.text_encoder == "bert-base-uncased"
    assert (minilm_path() / "config.json").exists()


@pytest.mark.parametrize("name", ["agqa", "nextqa", "star", "demo"])
def test_presets_train_with_the_fused_adamw_kernel(name, tmp_path):
    """One fused kernel over all parameters (transformers' default for torch >= 2.8): the presets keep it."""
    import torch
    from transformers import Trainer

    _, training_args, _ = parse_with_preset(["--preset", name, "--output_dir", str(tmp_path)], ScriptArguments)
    assert training_args.optim == "adamw_torch_fused"
    model = torch.nn.Linear(3, 2)
    trainer = Trainer(model=model, args=training_args, eval_dataset=[{"x": 0}])  # the paper presets evaluate
    optimizer = trainer.create_optimizer()
    assert optimizer.defaults["fused"] is True
    before = model.weight.detach().clone()
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()  # the fused kernel runs for CPU tensors
    assert not torch.equal(before, model.weight)


def test_long_video_presets_are_this_projects_settings():
    from configuration.presets import ACTIVITYNETQA, EGOSCHEMA, NEXTQA

    egoschema = MistConfig(**build_model_config_kwargs(EGOSCHEMA))
    assert (egoschema.num_frames, egoschema.num_segments, egoschema.num_selected_segments) == (64, 64, 2)
    assert egoschema.choice_template == NEXTQA.model["choice_template"] and EGOSCHEMA.task == "multiple-choice"
    activitynetqa = MistConfig(**build_model_config_kwargs(ACTIVITYNETQA))
    assert (activitynetqa.num_frames, activitynetqa.num_segments, ACTIVITYNETQA.task) == (64, 16, "open-ended")
    for preset in (EGOSCHEMA, ACTIVITYNETQA):
        assert preset.description.endswith("this project's settings (not in the paper)")


def test_extract_features_for_a_model_takes_the_sizes_its_config_reads(tmp_path):
    from modeling_mist import MistVideoProcessor
    from training.cli.extract_features import parse_args, resolve_sizes

    config = MistConfig(num_frames=8, num_segments=4, grid_size=2, num_selected_patches=2, crop_size=32)
    config.save_pretrained(tmp_path)
    # A processor saved with other sizes (hand-edited): the model reads what its config says.
    MistVideoProcessor(clip_model_name="ViT-B-16", clip_pretrained=None, num_frames=4, grid_size=1).save_pretrained(
        tmp_path
    )
    sizes = resolve_sizes(parse_args(["videos/", "--output-dir", str(tmp_path / "f"), "--model", str(tmp_path)]))
    assert sizes == dict(num_frames=8, grid_size=2, crop_size=32, clip_model="ViT-B-16", clip_pretrained=None)
    flagged = parse_args(["v/", "--output-dir", "f", "--model", str(tmp_path), "--num-frames", "16"])
    assert resolve_sizes(flagged)["num_frames"] == 16
    preset = resolve_sizes(parse_args(["v/", "--output-dir", "f", "--preset", "nextqa"]))
    assert (preset["num_frames"], preset["grid_size"], preset["crop_size"]) == (32, 4, 224)
    assert preset["clip_model"] == MistVideoProcessor.clip_model_name == "ViT-B-32-quickgelu"
