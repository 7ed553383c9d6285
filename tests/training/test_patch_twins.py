"""The patch task's twins: what each one sees, and that the oracle's selectors keep the evidence."""

import pytest
import torch

from modeling_mist import MistForVideoQuestionAnswering
from tests.modeling.mist_testing import random_inputs, tiny_config
from training.demo.patch_twins import OracleSelector, TwinCollator, install_oracle, twin_config_overrides


def test_oracle_selection_puts_the_evidence_first_in_every_layer():
    config = tiny_config(grid_size=4, num_selected_patches=3)  # 16 cells, keep 3
    torch.manual_seed(0)
    model = MistForVideoQuestionAnswering(config).eval()
    install_oracle(model)
    inputs = random_inputs(config)
    segments, cells = torch.tensor([3, 0, 2]), torch.tensor([[5, 6], [0, 4], [15, 11]])
    outputs = model(**inputs, evidence_segment=segments, evidence_cells=cells)
    assert all(isinstance(layer.segment_selector, OracleSelector) for layer in model.mist.ista_layers)
    for layer in range(config.num_ista_layers):
        assert outputs.segment_indices[layer][:, 0].tolist() == segments.tolist()
        top_two = outputs.patch_indices[layer][..., :2].sort(dim=-1).values  # [batch, k, frames, 2]
        assert (top_two == cells.sort(dim=-1).values[:, None, None]).all()
        # the third kept cell is the selector's own best among the others
        scores = outputs.patch_scores[layer].clone()  # [batch, k, frames, cells]
        for row, (first, second) in enumerate(cells.tolist()):
            scores[row, ..., [first, second]] = -1
        assert (outputs.patch_indices[layer][..., 2] == scores.argmax(dim=-1)).all()
    # the weights are the model's own: a state dict round trip into a plain model loads every key
    plain = MistForVideoQuestionAnswering(config)
    assert plain.load_state_dict(model.state_dict()).missing_keys == []


def test_the_oracle_trains_the_rest_of_the_model():
    config = tiny_config(grid_size=4, num_selected_patches=3)
    model = MistForVideoQuestionAnswering(config).train()
    install_oracle(model)
    inputs = random_inputs(config)
    outputs = model(**inputs, labels=torch.tensor([0, 1, 2]), evidence_segment=torch.tensor([1, 1, 1]),
                    evidence_cells=torch.tensor([[0, 1]] * 3))  # fmt: skip
    outputs.loss.backward()
    assert model.mist.ista_layers[0].patch_projection.dense.weight.grad.abs().sum() > 0
    assert model.mist.ista_layers[0].segment_selector.query_proj.weight.grad is None  # no gradient through the choice


class RecordingCollator:
    def __call__(self, examples):
        return {
            "frame_features": torch.ones(len(examples), 2, 3),
            "patch_features": torch.ones(len(examples), 2, 4, 3),
        }


def test_twin_collators_change_only_what_the_twin_hides():
    examples = [{"evidence_segment": 2, "evidence_cells": [1, 3]}, {"evidence_segment": 0, "evidence_cells": [0, 2]}]
    summaries = TwinCollator(RecordingCollator(), "summaries_only")(examples)
    assert summaries["patch_features"].abs().sum() == 0 and summaries["frame_features"].sum() == 12
    oracle = TwinCollator(RecordingCollator(), "oracle")(examples)
    assert oracle["evidence_segment"].tolist() == [2, 0] and oracle["evidence_cells"].tolist() == [[1, 3], [0, 2]]
    assert TwinCollator(RecordingCollator(), "mist")(examples).keys() == {"frame_features", "patch_features"}


def test_twin_overrides():
    assert (
        twin_config_overrides("all_patches", 8)
        == "use_patch_selection=False,num_selected_segments=8,train_selection=topk"
    )
    assert twin_config_overrides("oracle", 8) is None
    with pytest.raises(ValueError, match="unknown twin 'probe'; expected one of mist, question_only"):
        twin_config_overrides("probe", 8)


def test_the_patch_task_trains_with_its_selection_settings_under_the_runs_own_overrides():
    from configuration.presets import DEMO
    from training.demo.patch_runner import PatchDemoOptions, model_overrides
    from training.model_config import build_model_config_kwargs

    chosen = build_model_config_kwargs(DEMO, model_overrides(PatchDemoOptions()))
    # one kept segment, every cell of its frames (ordered by the patch selector's scores)
    assert DEMO.model["grid_size"] == 4
    assert (chosen["num_selected_segments"], chosen["num_selected_patches"]) == (1, 16)
    assert (chosen["train_selection"], chosen["gumbel_temperature"], chosen["gumbel_temperature_end"]) == (
        "gumbel_topk", 16, 0.5,
    )  # fmt: skip
    assert chosen["gumbel_annealing_steps"] == 200
    mine = build_model_config_kwargs(DEMO, model_overrides(PatchDemoOptions(config_overrides="num_selected_patches=8")))
    assert mine["num_selected_patches"] == 8 and mine["train_selection"] == "gumbel_topk"  # the run's own win
    assert model_overrides(PatchDemoOptions(preset_selection=True)) is None  # the demo preset as it is
    preset = build_model_config_kwargs(DEMO, model_overrides(PatchDemoOptions(preset_selection=True)))
    assert preset == build_model_config_kwargs(DEMO, None)


def test_the_patch_task_trains_at_its_learning_rate_under_the_runs_own_training_overrides():
    from configuration.presets import DEMO
    from training.demo.patch_runner import PatchDemoOptions, training_arguments

    chosen = training_arguments(PatchDemoOptions(seed=3, epochs=2, curve_points=0))
    assert (chosen["learning_rate"], chosen["lr_scheduler_type"]) == (1e-3, "constant_with_warmup")
    assert chosen["warmup_steps"] == DEMO.training["warmup_steps"]  # the preset's warm-up, then held
    assert (chosen["num_train_epochs"], chosen["seed"], chosen["eval_strategy"]) == (2, 3, "no")
    mine = training_arguments(PatchDemoOptions(training_overrides="learning_rate=2e-3,lr_scheduler_type=cosine"))
    assert (mine["learning_rate"], mine["lr_scheduler_type"]) == (2e-3, "cosine")  # the run's own win
    assert (mine["eval_strategy"], mine["eval_steps"]) == ("steps", 1 / 8)
