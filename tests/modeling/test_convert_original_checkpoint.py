"""Conversion of checkpoints saved by the original MIST code (showlab/mist, AGQA variant)."""

import collections
import dataclasses
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, DistilBertConfig, DistilBertModel

import modeling_mist  # noqa: F401  (registers the Auto classes)
from configuration.presets import get_preset
from configuration.variants import REFERENCE_VARIANTS, UNTENSORED_SIZES
from modeling_mist import MistConfig, MistForVideoQuestionAnswering
from modeling_mist.convert_original_checkpoint import REFERENCE_TOKENIZERS, infer_config
from modeling_mist.convert_original_checkpoint import main as convert_main
from tests.modeling.mist_testing import DISTILBERT_TEXT_CONFIG, VOCAB, random_inputs, reference_outputs, tiny_config

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
    fixture = reference_outputs("agqa")
    assert convert_main([str(fixture / "checkpoint.pth"), str(tmp_path)]) == 0
    report = capsys.readouterr().out
    for unused in ("clip", "crossmodal_matching", "ttrans", "frame_position_embedding", "token_type_embedding"):
        assert unused in report
    inputs = torch.load(fixture / "inputs.pt", weights_only=True)
    expected = torch.load(fixture / "expected.pt", weights_only=True)["logits"]
    model_inputs = {name: inputs[name] for name in MODEL_INPUTS}
    for model in (MistForVideoQuestionAnswering.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert type(model) is MistForVideoQuestionAnswering
        config = model.config
        assert (config.max_question_length, config.num_hidden_layers, config.intermediate_size) == (
            inputs["qmax"],
            1,
            256,
        )
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
            dict(
                hidden_size=64,
                num_attention_heads=4,
                text_heads=2,
                num_frames=12,
                num_segments=3,
                num_selected_patches=3,
            ),
            [
                "--num-attention-heads",
                "4",
                "--text-num-attention-heads",
                "2",
                "--num-frames",
                "12",
                "--num-segments",
                "3",
                "--grid-size",
                "2",
                "--num-selected-patches",
                "3",
            ],
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
        text_config={
            "vocab_size": 120,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": text_heads,
            "intermediate_size": 40,
            "max_position_embeddings": 40,
            "type_vocab_size": 3,
        },
        **sizes,
    )
    if not flags:  # the default frame/grid/top-k sizes are the paper's
        config = tiny_config(
            **{
                **config.to_diff_dict(),
                "num_frames": 32,
                "num_segments": 8,
                "grid_size": 4,
                "num_selected_patches": 12,
                "text_config": config.text_config,
            }
        )
    torch.manual_seed(0)
    source = MistForVideoQuestionAnswering(config).eval()
    to_reference_checkpoint(source, tmp_path / "original.pth")
    assert convert_main([str(tmp_path / "original.pth"), str(tmp_path / "converted"), *flags]) == 0
    converted = AutoModel.from_pretrained(tmp_path / "converted").eval()
    for field in (
        "num_ista_layers",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_question_length",
        "clip_hidden_size",
        "box_hidden_size",
        "num_frames",
        "num_segments",
    ):
        assert getattr(converted.config, field) == getattr(config, field), field
    assert converted.config.text_config.num_attention_heads == text_heads
    assert converted.config.text_config.type_vocab_size == 3
    inputs = random_inputs(config)
    with torch.no_grad():
        torch.testing.assert_close(converted(**inputs).logits, source(**inputs).logits, rtol=0, atol=0)


def test_a_state_dict_that_is_not_mist_names_the_missing_keys(tmp_path, capsys):
    torch.save(
        {
            "module.encoder.weight": torch.randn(2, 2),
            "module.bert.bert.embeddings.word_embeddings.weight": torch.randn(4, 8),
        },
        tmp_path / "other.pth",
    )
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


# ---- NExT-QA and STAR (model/mist_nextqa.py, model/mist_star.py) ----

NEXTQA_OPTIONS = dict(
    frame_as_patch_candidate=True,
    question_tokens_in_sequence=False,
    segment_normalization="time",
    fusion_pooling="mean",
    answer_pooling="mean_unmasked",
    gumbel_temperature=100.0,
    use_patch_selection=True,
    task="multiple-choice",
)
STAR_OPTIONS = dict(
    frame_as_patch_candidate=False,
    question_tokens_in_sequence=True,
    segment_normalization="frame",
    fusion_pooling="first",
    answer_pooling="cls",
    gumbel_temperature=1.0,
    use_patch_selection=False,
    num_temporal_layers=0,
    task="multiple-choice",
)


def to_reference_state(model: MistForVideoQuestionAnswering, variant: str, table_rows: int) -> dict:
    """`model` saved as the original NExT-QA / STAR code saves it: its keys, its unused modules, its position
    table of `table_rows` rows (the used rows first, then rows the forward never reads)."""
    state = collections.OrderedDict()
    for key, tensor in model.state_dict().items():
        if key.startswith("mist.temporal_encoder.layers."):
            key = key.replace("mist.temporal_encoder.layers.", "ttrans.layer.")
            for ours, theirs in ISTA_TO_REFERENCE[-8:]:  # the block parts
                key = key.replace(ours, theirs)
        for ours, theirs in TO_REFERENCE:
            key = key.replace(ours, theirs) if key.startswith(ours) else key
        for ours, theirs in ISTA_TO_REFERENCE if key.startswith("ISTA.") else []:
            key = key.replace(ours, theirs)
        if key.endswith("position.position_embeddings.weight"):
            extra = torch.randn(table_rows - tensor.shape[0], tensor.shape[1])
            tensor = torch.cat([tensor, extra])
        state[f"module.{key}"] = tensor.clone()
    config = model.config
    hidden, text_hidden = config.hidden_size, config.text_config.hidden_size
    state["module.clip.visual.proj"] = torch.randn(8, 4)
    if variant == "nextqa":
        # The question BERT runs in the reference but its output is unused; it has the answer BERT's layout.
        for key, tensor in model.answer_encoder.state_dict().items():
            state[f"module.bert.bert.{key}"] = torch.randn_like(tensor)
        for prefix in ("bert.bert", "amodel.bert.bert"):
            state[f"module.{prefix}.pooler.dense.weight"] = torch.randn(text_hidden, text_hidden)
        state["module.linear_question.weight"] = torch.randn(hidden, text_hidden)
        state["module.norm_question.weight"] = torch.randn(hidden)
        for layer in range(config.num_ista_layers):
            state[f"module.ISTA.{layer}.linear_question.weight"] = torch.randn(hidden, text_hidden)
            state[f"module.ISTA.{layer}.norm_question.bias"] = torch.randn(hidden)
            state[f"module.ISTA.{layer}.position.modality_embedding.weight"] = torch.randn(2, hidden)
    else:
        state["module.position.position_embeddings.weight"] = torch.randn(50, hidden)
        state["module.frame_position_embedding.position_embeddings.weight"] = torch.randn(32, hidden)
        state["module.token_type_embedding.modality_embedding.weight"] = torch.randn(3, hidden)
        state["module.crossmodal_matching.weight"] = torch.randn(1, hidden)
    return state


@pytest.mark.parametrize("variant", ["nextqa", "star"])
def test_nextqa_and_star_fixtures_reproduce_the_original_logits(tmp_path, capsys, variant):
    fixture = reference_outputs(variant)
    assert convert_main([str(fixture / "checkpoint.pth"), str(tmp_path)]) == 0
    report = capsys.readouterr().out
    inputs = torch.load(fixture / "inputs.pt", weights_only=True)
    expected = torch.load(fixture / "expected.pt", weights_only=True)["logits"]
    if variant == "nextqa":
        assert "NExT-QA variant (recognised from the keys)" in report
        for unused in ("bert.bert (question encoder, output unused)", "ISTA.*.position.modality_embedding", "clip"):
            assert unused in report
        assert "mist.ista_layers.0.embeddings.position_embeddings.weight: 78 -> 48 rows" in report
    else:
        assert "STAR variant (recognised from the keys)" in report
        for unused in ("crossmodal_matching", "frame_position_embedding", "token_type_embedding", "clip"):
            assert unused in report
        assert "mist.ista_layers.0.embeddings.position_embeddings.weight: 288 -> 166 rows" in report
    options = NEXTQA_OPTIONS if variant == "nextqa" else STAR_OPTIONS
    model_inputs = {name: inputs[name] for name in MODEL_INPUTS}
    for model in (MistForVideoQuestionAnswering.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert type(model) is MistForVideoQuestionAnswering
        config = model.config
        assert {name: getattr(config, name) for name in options} == options
        assert config.num_ista_layers == 1 and config.freeze_position_embeddings
        assert config.max_question_length == inputs["qmax"] == 30
        assert config.text_config.model_type == ("distilbert" if variant == "star" else "bert")
        assert config.text_config.vocab_size == inputs["text_config"]["vocab_size"]
        with torch.no_grad():
            logits = model.eval()(**model_inputs).logits
        assert logits.shape == expected.shape == (3, inputs["num_choices"])
        assert relative_error(logits, expected) < 1e-4


def nextqa_source(**sizes) -> MistForVideoQuestionAnswering:
    config = tiny_config(**{**NEXTQA_OPTIONS, "num_ista_layers": 1, "num_temporal_layers": 2, **sizes})
    return MistForVideoQuestionAnswering(config).eval()


def star_source(**sizes) -> MistForVideoQuestionAnswering:
    config = tiny_config(**{**STAR_OPTIONS, "text_config": DISTILBERT_TEXT_CONFIG, "num_ista_layers": 1, **sizes})
    return MistForVideoQuestionAnswering(config).eval()


@pytest.mark.parametrize(
    "variant, make_source, sizes, extra_rows, flags",
    [
        # NExT-QA: 8 one-frame segments on a 2x2 grid, keep 1 frame and 4 of its 5 candidates; 2 temporal blocks.
        (
            "nextqa",
            nextqa_source,
            dict(
                num_frames=8,
                num_segments=8,
                num_selected_segments=1,
                num_selected_patches=4,
                hidden_size=32,
                clip_hidden_size=32,
            ),
            "question",  # the reference's table: the 12 used rows, then Q more
            [
                "--num-frames",
                "8",
                "--num-segments",
                "8",
                "--grid-size",
                "2",
                "--num-selected-segments",
                "1",
                "--num-selected-patches",
                "4",
                "--num-attention-heads",
                "4",
                "--text-num-attention-heads",
                "4",
            ],
        ),
        # Two ISTA layers, every candidate kept, one temporal block; the variant forced; heads from width / 64.
        (
            "nextqa",
            nextqa_source,
            dict(
                num_frames=4,
                num_segments=4,
                num_selected_segments=2,
                num_selected_patches=5,
                hidden_size=64,
                clip_hidden_size=64,
                num_attention_heads=1,
                num_ista_layers=2,
                num_temporal_layers=1,
                text_config={
                    "vocab_size": 99,
                    "hidden_size": 64,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 1,
                    "intermediate_size": 40,
                    "max_position_embeddings": 32,
                },
            ),
            "question",
            [
                "--variant",
                "nextqa",
                "--num-frames",
                "4",
                "--num-segments",
                "4",
                "--grid-size",
                "2",
                "--num-selected-segments",
                "2",
                "--num-selected-patches",
                "5",
            ],
        ),
        # STAR with the reference's mis-sized table: 2 + P * F / 2 rows beyond Q, more than the forward uses.
        (
            "star",
            star_source,
            dict(num_frames=12, num_segments=6, num_selected_segments=2),
            "reference",
            [
                "--num-frames",
                "12",
                "--num-segments",
                "6",
                "--grid-size",
                "2",
                "--num-attention-heads",
                "4",
                "--text-num-attention-heads",
                "4",
            ],
        ),
        # STAR repaired the other way (a table of exactly the used rows): Q given on the command line.
        (
            "star",
            star_source,
            dict(num_frames=8, num_segments=4, num_selected_segments=1, max_question_length=11),
            0,
            [
                "--variant",
                "star",
                "--max-question-length",
                "11",
                "--num-frames",
                "8",
                "--num-segments",
                "4",
                "--grid-size",
                "2",
                "--num-selected-segments",
                "1",
                "--num-attention-heads",
                "4",
                "--text-num-attention-heads",
                "4",
            ],
        ),
    ],
)
def test_variant_checkpoints_of_other_sizes_convert_exactly(
    tmp_path, capsys, variant, make_source, sizes, extra_rows, flags
):
    torch.manual_seed(0)
    source = make_source(**sizes)
    config = source.config
    # Non-sinusoidal tables, so that a table initialised instead of loaded would show.
    for layer in source.mist.ista_layers:
        torch.nn.init.normal_(layer.embeddings.position_embeddings.weight)
    if extra_rows == "question":  # NExT-QA's table has Q + video-token rows, of which the video tokens are used
        extra_rows = config.max_question_length
    if extra_rows == "reference":  # what mist_star.py sizes: 2 segments of F/2 frames, keep 1, every patch
        extra_rows = (
            config.max_question_length + 2 + config.num_patches * config.num_frames // 2 - config.sequence_length
        )
    table_rows = config.sequence_length + extra_rows
    torch.save(to_reference_state(source, variant, table_rows), tmp_path / "original.pth")
    assert convert_main([str(tmp_path / "original.pth"), str(tmp_path / "converted"), *flags]) == 0
    report = capsys.readouterr().out
    if extra_rows:
        assert f"{table_rows} -> {config.sequence_length} rows" in report
    converted = AutoModel.from_pretrained(tmp_path / "converted").eval()
    fields = (
        "num_ista_layers",
        "num_hidden_layers",
        "num_temporal_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_question_length",
        "clip_hidden_size",
        "hidden_size",
        "box_hidden_size",
        "num_frames",
        "num_segments",
        "num_selected_segments",
        "sequence_length",
        "use_patch_selection",
        "question_tokens_in_sequence",
    )
    for field in fields:
        assert getattr(converted.config, field) == getattr(config, field), field
    assert converted.config.text_config.to_diff_dict() | {"dtype": None} == config.text_config.to_diff_dict() | {
        "dtype": None
    }
    for ours, theirs in zip(converted.mist.ista_layers, source.mist.ista_layers):
        torch.testing.assert_close(
            ours.embeddings.position_embeddings.weight, theirs.embeddings.position_embeddings.weight
        )
    inputs = random_inputs(config)
    with torch.no_grad():
        torch.testing.assert_close(converted(**inputs).logits, source(**inputs).logits, rtol=0, atol=0)


def test_a_forced_variant_that_does_not_fit_the_keys_is_refused(tmp_path, capsys):
    agqa = str(reference_outputs("agqa") / "checkpoint.pth")
    assert convert_main([agqa, str(tmp_path / "out"), "--variant", "star"]) == 1
    error = capsys.readouterr().err
    assert "the ISTA position table has 134 rows, but the STAR reference with num_frames=32, num_segments=8" in error
    assert "has 258 rows beyond the question positions" in error
    assert convert_main([agqa, str(tmp_path / "out"), "--variant", "star", "--max-question-length", "30"]) == 1
    assert "134 rows, too few for the 166 positions of the STAR variant" in capsys.readouterr().err
    flags = ["--variant", "star", "--max-question-length", "30", "--num-selected-segments", "1"]
    assert convert_main([agqa, str(tmp_path / "out"), *flags]) == 1
    error = capsys.readouterr().err  # the sizes fit now, but AGQA's patch selectors have no place in STAR
    assert "checkpoint tensors with no place in the model: mist.ista_layers.0.patch_selector.key_norm.bias" in error
    star = str(reference_outputs("star") / "checkpoint.pth")
    assert convert_main([star, str(tmp_path / "out"), "--variant", "nextqa"]) == 1
    error = capsys.readouterr().err
    missing = "ttrans.layer.0.ffn.lin1.weight, ISTA.0.reg_selector.linear_Q.weight"
    assert f"not a MIST (NExT-QA variant) state dict: missing expected keys {missing}" in error
    assert not (tmp_path / "out").exists()


def test_distilbert_text_encoders_are_converted_with_a_distilbert_config(tmp_path):
    torch.manual_seed(0)
    source = star_source(num_frames=12, num_segments=6)
    rows = source.config.max_question_length + 2 + 4 * 12 // 2
    torch.save(to_reference_state(source, "star", rows), tmp_path / "original.pth")
    from modeling_mist.convert_original_checkpoint import convert_checkpoint

    conversion = convert_checkpoint(
        tmp_path / "original.pth",
        num_frames=12,
        num_segments=6,
        grid_size=2,
        text_num_attention_heads=4,
        num_attention_heads=4,
    )
    text = conversion.model.config.text_config
    assert conversion.variant == "star" and type(text) is DistilBertConfig
    assert (text.vocab_size, text.dim, text.n_layers, text.n_heads, text.hidden_dim, text.max_position_embeddings) == (
        VOCAB,
        24,
        1,
        4,
        37,
        32,
    )
    for ours, theirs in (
        (conversion.model.mist.question_encoder, source.mist.question_encoder),
        (conversion.model.answer_encoder, source.answer_encoder),
    ):
        assert type(ours) is DistilBertModel
        for name, tensor in theirs.state_dict().items():
            torch.testing.assert_close(ours.state_dict()[name], tensor, rtol=0, atol=0)


def test_nextqa_fixture_topk_versus_expectation_selection(capsys):
    """How far the two inference rules are apart on the converted NExT-QA fixture (random weights, 3 questions)."""
    from modeling_mist.convert_original_checkpoint import convert_checkpoint

    fixture = reference_outputs("nextqa")
    model = convert_checkpoint(fixture / "checkpoint.pth").model
    inputs = torch.load(fixture / "inputs.pt", weights_only=True)
    model_inputs = {name: inputs[name] for name in MODEL_INPUTS}
    with torch.no_grad():
        topk = model(**model_inputs).logits
        model.config.eval_selection = "expectation"
        expectation = model(**model_inputs).logits
    assert relative_error(topk, torch.load(fixture / "expected.pt", weights_only=True)["logits"]) < 1e-4
    difference = (expectation - topk).abs()
    max_abs, max_relative = difference.max().item(), relative_error(expectation, topk)
    agreement = (expectation.argmax(-1) == topk.argmax(-1)).float().mean().item()
    with capsys.disabled():
        print(
            f"\nNExT-QA fixture, expectation vs top-k logits: max abs {max_abs:.4f}, "
            f"max relative {max_relative:.4f}, argmax agreement {agreement:.0%}"
        )
    assert max_abs == pytest.approx(1.0568, abs=1e-3) and max_relative == pytest.approx(1.2361, abs=1e-3)
    assert agreement == 1.0


def test_reference_outputs_are_found_through_the_variable_or_skip_saying_how(tmp_path, monkeypatch):
    from tests.modeling import mist_testing

    folder = tmp_path / "refs" / "original-star"
    folder.mkdir(parents=True)
    for name in ("checkpoint.pth", "inputs.pt", "expected.pt"):
        (folder / name).write_bytes(b"")
    monkeypatch.setenv("MIST_REFERENCE_OUTPUTS", str(tmp_path / "refs"))
    assert reference_outputs("star") == folder
    with pytest.raises(FileNotFoundError, match=r"MIST_REFERENCE_OUTPUTS=.*refs: no checkpoint.pth, inputs.pt and"):
        reference_outputs("agqa")  # asked for and absent: an error, not a skip
    monkeypatch.delenv("MIST_REFERENCE_OUTPUTS")
    monkeypatch.setattr(mist_testing, "TEAM_REFERENCE_OUTPUTS", tmp_path / "no-shared")
    with pytest.raises(pytest.skip.Exception, match="set MIST_REFERENCE_OUTPUTS to a folder holding original-star/"):
        reference_outputs("star")


# ---- the converter's defaults: the variants table the presets read too ----


@pytest.mark.parametrize("variant", sorted(REFERENCE_VARIANTS))
def test_converted_settings_are_the_presets_from_one_table(variant, monkeypatch):
    settings = REFERENCE_VARIANTS[variant]
    preset = get_preset(variant)
    trained = MistConfig(**preset.model)  # what `mist train --preset VARIANT` builds
    # A checkpoint of the variant at tiny widths: only the sizes and switches no tensor carries are the table's.
    widths = dict(clip_hidden_size=32, num_temporal_layers=trained.num_temporal_layers)
    text = {"text_config": DISTILBERT_TEXT_CONFIG} if variant == "star" else {}
    source = MistForVideoQuestionAnswering(
        tiny_config(**settings.sizes, **settings.options, task=settings.task, **widths, **text)
    )
    config = source.config
    extra_rows = {"agqa": 0, "nextqa": config.max_question_length}.get(
        variant, config.max_question_length + 2 + config.num_patches * config.num_frames // 2 - config.sequence_length
    )  # the reference tables: AGQA's the used rows, NExT-QA's Q more, STAR's sized for 2 segments of F/2 frames
    state = to_reference_state(source, variant, config.sequence_length + extra_rows)
    state = {key.removeprefix("module."): tensor for key, tensor in state.items()}

    converted = infer_config(state, variant)
    for name in (*UNTENSORED_SIZES, *settings.options, "freeze_position_embeddings"):  # the task: `preset.task`
        assert getattr(converted, name) == getattr(trained, name), name
    assert converted.task == preset.task and converted.max_question_length == config.max_question_length

    # Changed in the table, it changes in the converter (the presets are built from the same entries).
    changed = dataclasses.replace(settings, options={**settings.options, "gumbel_temperature": 7.0})
    monkeypatch.setitem(REFERENCE_VARIANTS, variant, changed)
    assert infer_config(state, variant).gumbel_temperature == 7.0
    assert preset.model == settings.config_kwargs and preset.text_encoder == REFERENCE_TOKENIZERS[variant]


def test_the_converter_flags_name_the_tables_defaults(capsys):
    with pytest.raises(SystemExit):
        convert_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--num-segments NUM_SEGMENTS segments (default: 8, NExT-QA: 32)" in text
    assert "--num-selected-patches NUM_SELECTED_PATCHES top-j patches (default: 12, NExT-QA: 16)" in text
