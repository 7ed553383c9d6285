"""Conversion of checkpoints saved by the original MIST code (showlab/mist, AGQA variant)."""

import collections
from pathlib import Path

import pytest
import torch
from mist_testing import random_inputs, tiny_config
from transformers import AutoModel

import modeling_mist  # noqa: F401  (registers the Auto classes)
from modeling_mist import MistForVideoQuestionAnswering
from modeling_mist.convert_original_checkpoint import main as convert_main

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "original-agqa"
MODEL_INPUTS = (
    "frame_features",
    "patch_features",
    "input_ids",
    "attention_mask",
    "question_clip_embeds",
    "answer_input_ids",
    "answer_attention_mask",
)

# This project's names -> the original code's, written independently of the converter's table.
TO_REFERENCE = [
    ("mist.patch_encoder.box_encoder.", "encode_vid.bbox_conv."),
    ("mist.patch_encoder.projection.", "encode_vid.tohid.0."),
    ("mist.question_encoder.", "bert.bert."),
    ("answer_encoder.", "amodel.bert.bert."),
    ("answer_projection.", "amodel.linear_text."),
    ("mist.fusion_proj.", "vqproj.1."),
    ("mist.ista_layers.", "ISTA."),
]
# Inside an ISTA layer.
ISTA_TO_REFERENCE = [
    (".segment_selector.", ".seg_selector."),
    (".patch_selector.", ".reg_selector."),
    ("_selector.query_proj.", "_selector.linear_Q."),
    ("_selector.query_norm.", "_selector.norm_Q."),
    ("_selector.key_proj.", "_selector.linear_K."),
    ("_selector.key_norm.", "_selector.norm_K."),
    (".question_projection.dense.", ".linear_question."),
    (".question_projection.norm.", ".norm_question."),
    (".segment_projection.dense.", ".linear_video."),
    (".segment_projection.norm.", ".norm_video."),
    (".patch_projection.dense.", ".linear_patch."),
    (".patch_projection.norm.", ".norm_patch."),
    (".embeddings.position_embeddings.", ".position.position_embeddings."),
    (".embeddings.modality_embeddings.", ".position.modality_embedding."),
    (".embeddings.norm.", ".position.LayerNorm."),
    (".layers.", ".mmt.layer."),
    (".attention.q_proj.", ".attention.q_lin."),
    (".attention.k_proj.", ".attention.k_lin."),
    (".attention.v_proj.", ".attention.v_lin."),
    (".attention.o_proj.", ".attention.out_lin."),
    (".attention_norm.", ".sa_layer_norm."),
    (".feed_forward.up_proj.", ".ffn.lin1."),
    (".feed_forward.down_proj.", ".ffn.lin2."),
    (".output_norm.", ".output_layer_norm."),
]


def to_reference_checkpoint(model: MistForVideoQuestionAnswering, path: Path):
    """Save `model` the way the original training script does: DataParallel keys plus unused modules."""
    state = collections.OrderedDict()
    for key, tensor in model.state_dict().items():
        for ours, theirs in TO_REFERENCE:
            key = key.replace(ours, theirs) if key.startswith(ours) else key
        for ours, theirs in ISTA_TO_REFERENCE if key.startswith("ISTA.") else []:
            key = key.replace(ours, theirs)
        state[f"module.{key}"] = tensor.clone()
    hidden, text_hidden = model.config.hidden_size, model.config.text_config.hidden_size
    state["module.crossmodal_matching.weight"] = torch.randn(1, hidden)
    state["module.clip.visual.proj"] = torch.randn(8, 4)
    state["module.ttrans.layer.0.ffn.lin1.weight"] = torch.randn(7, hidden)
    state["module.position.position_embeddings.weight"] = torch.randn(50, hidden)
    state["module.bert.bert.pooler.dense.weight"] = torch.randn(text_hidden, text_hidden)
    torch.save(state, path)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs() / expected.abs().clamp(min=1e-6)).max().item()


def test_fixture_checkpoint_reproduces_the_original_logits(tmp_path, capsys):
    assert convert_main([str(FIXTURE / "checkpoint.pth"), str(tmp_path)]) == 0
    report = capsys.readouterr().out
    for unused in ("clip", "crossmodal_matching", "ttrans", "frame_position_embedding", "token_type_embedding"):
        assert unused in report
    inputs = torch.load(FIXTURE / "inputs.pt", weights_only=True)
    expected = torch.load(FIXTURE / "expected.pt", weights_only=True)["logits"]
    model_inputs = {name: inputs[name] for name in MODEL_INPUTS}
    for model in (MistForVideoQuestionAnswering.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert type(model) is MistForVideoQuestionAnswering
        config = model.config
        assert (config.max_question_length, config.num_hidden_layers, config.intermediate_size) == (inputs["qmax"], 1, 256)
        assert config.text_config.num_hidden_layers == inputs["text_config"]["num_hidden_layers"]
        assert config.text_config.vocab_size == inputs["text_config"]["vocab_size"]
        with torch.no_grad():
            logits = model.eval()(**model_inputs).logits
        assert logits.shape == expected.shape
        assert relative_error(logits, expected) < 1e-4


@pytest.mark.parametrize(
    "sizes, flags",
    [
        # Heads follow the width / 64 default.
        (dict(hidden_size=128, num_attention_heads=2, text_heads=1), []),
        # Heads given on the command line, other frame / grid / top-k sizes too.
        (
            dict(hidden_size=64, num_attention_heads=4, text_heads=2, num_frames=12, num_segments=3, num_selected_patches=3),
            ["--num-attention-heads", "4", "--text-num-attention-heads", "2", "--num-frames", "12", "--num-segments", "3", "--grid-size", "2", "--num-selected-patches", "3"],
        ),
    ],
)
def test_checkpoints_of_other_sizes_convert_exactly(tmp_path, sizes, flags):
    text_heads = sizes.pop("text_heads")
    config = tiny_config(
        num_ista_layers=3,
        num_hidden_layers=2,
        intermediate_size=48,
        max_question_length=9,
        clip_hidden_size=24,
        box_hidden_size=12,
        text_config={"vocab_size": 120, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": text_heads, "intermediate_size": 40, "max_position_embeddings": 40, "type_vocab_size": 3},
        **sizes,
    )
    if not flags:  # the default frame/grid/top-k sizes are the paper's
        config = tiny_config(**{**config.to_diff_dict(), "num_frames": 32, "num_segments": 8, "grid_size": 4, "num_selected_patches": 12, "text_config": config.text_config})
    torch.manual_seed(0)
    source = MistForVideoQuestionAnswering(config).eval()
    to_reference_checkpoint(source, tmp_path / "original.pth")
    assert convert_main([str(tmp_path / "original.pth"), str(tmp_path / "converted"), *flags]) == 0
    converted = AutoModel.from_pretrained(tmp_path / "converted").eval()
    for field in ("num_ista_layers", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_question_length", "clip_hidden_size", "box_hidden_size", "num_frames", "num_segments"):
        assert getattr(converted.config, field) == getattr(config, field), field
    assert converted.config.text_config.num_attention_heads == text_heads
    assert converted.config.text_config.type_vocab_size == 3
    inputs = random_inputs(config)
    with torch.no_grad():
        torch.testing.assert_close(converted(**inputs).logits, source(**inputs).logits, rtol=0, atol=0)


def test_a_state_dict_that_is_not_mist_names_the_missing_keys(tmp_path, capsys):
    torch.save({"module.encoder.weight": torch.randn(2, 2), "module.bert.bert.embeddings.word_embeddings.weight": torch.randn(4, 8)}, tmp_path / "other.pth")
    assert convert_main([str(tmp_path / "other.pth"), str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert "not a MIST (AGQA variant) state dict: missing expected keys" in error
    assert "encode_vid.tohid.0.weight" in error and "amodel.linear_text.weight" in error
    assert "bert.bert.embeddings.word_embeddings.weight," not in error  # present keys are not listed
    assert not (tmp_path / "out").exists()


class NotATensor:
    pass


def test_a_pickle_with_arbitrary_objects_is_refused_unread(tmp_path, capsys):
    torch.save({"module.thing": NotATensor()}, tmp_path / "pickled.pth")
    assert convert_main([str(tmp_path / "pickled.pth"), str(tmp_path / "out")]) == 1
    assert "is not a tensors-only PyTorch checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
