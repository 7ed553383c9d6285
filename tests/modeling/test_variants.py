"""The NExT-QA and STAR options of MistConfig, one quirk at a time, checked against hand-computed tensors."""

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from transformers import DistilBertModel

from modeling_mist import MistConfig, MistForVideoQuestionAnswering
from modeling_mist.modeling_mist import MistSelector, segment_summaries, sinusoidal_table
from tests.modeling.mist_testing import BATCH, nextqa_config, random_inputs, star_config, tiny_config


def captured_inputs(module: torch.nn.Module) -> list:
    """Positional inputs of every call of `module`, recorded by a forward pre-hook."""
    calls = []
    module.register_forward_pre_hook(lambda _, args: calls.append(args))
    return calls


def captured_outputs(module: torch.nn.Module) -> list:
    calls = []
    module.register_forward_hook(lambda _, args, output: calls.append(output))
    return calls


def run(model, inputs, **kwargs):
    with torch.no_grad():
        return model(**inputs, **kwargs)


def video_and_question(inputs: dict) -> dict:
    """The base model's inputs (no answers)."""
    return {key: value for key, value in inputs.items() if not key.startswith("answer")}


def test_time_axis_segment_normalisation_is_the_reference_norm_over_segments():
    frames = torch.tensor([[[3.0, 1.0], [1.0, 1.0], [0.0, 2.0], [4.0, 0.0]]])  # [batch 1, 4 frames, 2 channels]
    # Two segments of two frames: means [2, 1] and [2, 1]; each channel over the 2 segments: norms sqrt(8), sqrt(2).
    expected_time = torch.tensor([[[2 / 8**0.5, 1 / 2**0.5], [2 / 8**0.5, 1 / 2**0.5]]])
    torch.testing.assert_close(segment_summaries(frames, 2, "time"), expected_time)
    # Per frame over channels, then the mean: ([3,1]/sqrt(10) + [1,1]/sqrt(2)) / 2, ...
    first = (torch.tensor([3.0, 1.0]) / 10**0.5 + torch.tensor([1.0, 1.0]) / 2**0.5) / 2
    second = (torch.tensor([0.0, 1.0]) + torch.tensor([1.0, 0.0])) / 2
    torch.testing.assert_close(segment_summaries(frames, 2, "frame"), torch.stack([first, second])[None])


def test_the_model_scores_segments_with_time_normalised_raw_frames():
    config = nextqa_config()
    model = MistForVideoQuestionAnswering(config).eval()
    inputs = random_inputs(config)
    keys = captured_inputs(model.mist.ista_layers[0].segment_selector)
    tokens = captured_inputs(model.mist.ista_layers[0].segment_projection)
    run(model, inputs)
    frames = inputs["frame_features"]  # one frame per segment: the mean is the frame itself
    expected = frames / frames.norm(dim=1, keepdim=True)  # each channel over the 8 segments
    torch.testing.assert_close(keys[0][1].squeeze(1), expected)
    torch.testing.assert_close(tokens[0][0], expected)  # the same tensor becomes the segment tokens


def test_the_raw_frame_is_patch_candidate_p_plus_one():
    config = nextqa_config()
    model = MistForVideoQuestionAnswering(config).eval()
    inputs = random_inputs(config)
    calls = captured_inputs(model.mist.ista_layers[0].patch_selector)
    out = run(model, inputs)
    candidates = calls[0][1]  # keys of the patch selector: [batch, k * f, P + 1, hidden]
    assert candidates.shape == (BATCH, 1, config.num_patches + 1, config.hidden_size)
    kept_frame = out.frame_indices[0].reshape(BATCH)  # one kept segment of one frame
    raw_frames = inputs["frame_features"][torch.arange(BATCH), kept_frame]  # not normalised, not projected
    torch.testing.assert_close(candidates[:, 0, config.num_patches], raw_frames, rtol=0, atol=0)
    assert out.patch_scores[0].shape == (BATCH, 1, 1, config.num_patches + 1)
    expected_order = out.patch_scores[0].argsort(dim=-1, descending=True)[..., : config.num_selected_patches]
    assert torch.equal(out.patch_indices[0], expected_order)


def test_a_frame_that_matches_the_question_is_kept_as_the_whole_frame():
    config = nextqa_config(num_selected_patches=1)
    model = MistForVideoQuestionAnswering(config).eval()
    selector = model.mist.ista_layers[0].patch_selector
    with torch.no_grad():  # keys projected like the query: a candidate equal to the question scores highest
        selector.key_proj.load_state_dict(selector.query_proj.state_dict())
    inputs = random_inputs(config)
    question = F.normalize(inputs["question_clip_embeds"], dim=-1)
    inputs["frame_features"] = question[:, None].expand(-1, config.num_frames, -1).clone()
    out = run(model, inputs)
    assert torch.equal(out.patch_indices[0], torch.full((BATCH, 1, 1, 1), config.num_patches))  # "the whole frame"


def test_without_question_tokens_the_sequence_is_segments_then_kept_patches_from_position_zero():
    config = nextqa_config(num_temporal_layers=0)
    model = MistForVideoQuestionAnswering(config).eval()
    assert model.mist.question_encoder is None and model.mist.ista_layers[0].question_projection is None
    assert model.mist.ista_layers[0].embeddings.modality_embeddings is None
    inputs = random_inputs(config)
    embeddings = model.mist.ista_layers[0].embeddings
    tokens, outputs = captured_inputs(embeddings), captured_outputs(embeddings)
    out = run(model.mist, video_and_question(inputs), output_hidden_states=True)
    length = config.num_segments + config.num_selected_patches  # 8 segments + 1 kept frame x 4 candidates
    assert config.sequence_length == length and out.last_hidden_state.shape == (BATCH, length, config.hidden_size)
    table = embeddings.position_embeddings.weight
    assert table.shape[0] == length
    expected = F.layer_norm(
        tokens[0][0] + table, (config.hidden_size,), embeddings.norm.weight, embeddings.norm.bias, 1e-12
    )
    torch.testing.assert_close(outputs[0], expected)
    torch.testing.assert_close(out.hidden_states[0], expected)
    # The question reaches the model only through its CLIP embedding: other ids, same answer.
    logits = run(model, inputs).logits
    changed = {**inputs, "input_ids": torch.randint(1, 50, inputs["input_ids"].shape)}
    torch.testing.assert_close(run(model, changed).logits, logits, rtol=0, atol=0)
    no_ids = {key: value for key, value in inputs.items() if key not in ("input_ids", "attention_mask")}
    torch.testing.assert_close(run(model, {**no_ids, "input_ids": None}).logits, logits, rtol=0, atol=0)


def test_mean_fusion_averages_every_output_token():
    config = nextqa_config()
    model = MistForVideoQuestionAnswering(config).eval()
    out = run(model.mist, video_and_question(random_inputs(config)))
    expected = model.mist.fusion_proj(out.last_hidden_state.mean(dim=1))
    torch.testing.assert_close(out.pooler_output, expected)
    # Two ISTA layers: the per-layer means are summed.
    config = nextqa_config(num_ista_layers=2)
    model = MistForVideoQuestionAnswering(config).eval()
    out = run(model, random_inputs(config), output_hidden_states=True)
    last_of_each_layer = out.hidden_states[config.num_hidden_layers], out.hidden_states[-1]
    expected = model.mist.fusion_proj(sum(h.mean(dim=1) for h in last_of_each_layer))
    torch.testing.assert_close(out.pooler_output, expected)


def test_temporal_encoder_on_one_frame_segments_is_a_per_patch_residual_mlp():
    config = nextqa_config(num_temporal_layers=1)
    model = MistForVideoQuestionAnswering(config).eval()
    block = model.mist.temporal_encoder.layers[0]
    states = torch.randn(2, config.num_segments, 1, config.num_patches, config.hidden_size)
    with torch.no_grad():
        actual = model.mist.temporal_encoder(states)
        # A length-1 sequence attends to itself with probability 1: attention = o_proj(v_proj(x)).
        attention = block.attention.o_proj(block.attention.v_proj(states))
        hidden = block.attention_norm(states + attention)
        expected = block.output_norm(hidden + block.feed_forward(hidden))
    torch.testing.assert_close(actual, expected)


def test_star_keeps_every_patch_of_the_kept_frames_in_grid_order():
    config = star_config()
    model = MistForVideoQuestionAnswering(config).eval()
    assert model.mist.ista_layers[0].patch_selector is None
    inputs = random_inputs(config)
    encoded = captured_outputs(model.mist.patch_encoder)
    patch_tokens = captured_inputs(model.mist.ista_layers[0].patch_projection)
    out = run(model, inputs)
    k, fps, patches = config.num_selected_segments, config.frames_per_segment, config.num_patches
    assert out.patch_scores is None
    assert torch.equal(out.patch_indices[0], torch.arange(patches).expand(BATCH, k, fps, patches))
    kept_frames = out.frame_indices[0].reshape(BATCH, k * fps)  # segment rank, then time order
    expected = encoded[0][torch.arange(BATCH)[:, None], kept_frames]  # [batch, k * f, P, hidden]
    torch.testing.assert_close(patch_tokens[0][0], expected.reshape(BATCH, -1, config.hidden_size), rtol=0, atol=0)
    assert config.sequence_length == config.max_question_length + config.num_segments + k * fps * patches
    assert run(model.mist, video_and_question(inputs)).last_hidden_state.shape[1] == config.sequence_length


def test_distilbert_text_encoders_read_the_question_and_the_answers():
    config = star_config()
    model = MistForVideoQuestionAnswering(config).eval()
    assert isinstance(model.mist.question_encoder, DistilBertModel) and isinstance(
        model.answer_encoder, DistilBertModel
    )
    inputs = random_inputs(config)
    with torch.no_grad():
        states = model.answer_encoder(input_ids=inputs["answer_input_ids"]).last_hidden_state
        expected = model.answer_projection(states[:, 0])  # [CLS]
        torch.testing.assert_close(model.get_answer_embeddings(inputs["answer_input_ids"]), expected)
    assert run(model, inputs).logits.shape == (BATCH, inputs["answer_input_ids"].shape[0])


def test_mean_unmasked_answer_pooling_averages_the_padding_too():
    config = nextqa_config()
    model = MistForVideoQuestionAnswering(config).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]])
    mask = (ids > 0).long()
    with torch.no_grad():
        states = model.answer_encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # [2, 5, text_hidden]
        expected = model.answer_projection(states.sum(dim=1) / 5)  # five positions, padding included
        torch.testing.assert_close(model.get_answer_embeddings(ids, mask), expected)
        # One more padding column (a longer candidate elsewhere in the batch) changes the embedding.
        wider = F.pad(ids, (0, 1))
        assert not torch.allclose(model.get_answer_embeddings(wider, (wider > 0).long()), expected)
        model.config.answer_pooling = "mean"  # the masked mean does not see padding
        masked = model.get_answer_embeddings(ids, mask)
        torch.testing.assert_close(model.get_answer_embeddings(wider, (wider > 0).long()), masked)


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_position_tables_are_not_updated_by_an_optimizer_step(tmp_path, freeze):
    config = tiny_config(freeze_position_embeddings=freeze, train_selection="topk")
    torch.manual_seed(0)
    model = MistForVideoQuestionAnswering(config).train()
    tables = [layer.embeddings.position_embeddings.weight for layer in model.mist.ista_layers]
    before = [table.clone() for table in tables]
    torch.testing.assert_close(before[0], sinusoidal_table(config.sequence_length, config.hidden_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    model(**random_inputs(config), labels=torch.tensor([0, 1, 2])).loss.backward()
    optimizer.step()
    parameters = {id(p) for p in model.parameters()}
    for table, initial in zip(tables, before):
        assert (id(table) in parameters) is not freeze
        assert torch.equal(table, initial) is freeze
    if freeze:  # a loaded (here: non-sinusoidal) table stays as loaded and frozen
        with torch.no_grad():
            tables[0].add_(1.0)
        model.save_pretrained(tmp_path)
        reloaded = MistForVideoQuestionAnswering.from_pretrained(tmp_path)
        table = reloaded.mist.ista_layers[0].embeddings.position_embeddings.weight
        torch.testing.assert_close(table, before[0] + 1.0)
        assert all(p is not table for p in reloaded.parameters())


def test_expectation_selection_is_the_noise_free_training_draw():
    config = tiny_config(eval_selection="expectation", gumbel_temperature=0.5)
    selector = MistSelector(config, key_size=config.hidden_size, num_selected=3).eval()
    question = torch.randn(2, config.clip_hidden_size)
    keys, values = torch.randn(2, 5, 4, config.hidden_size), torch.randn(2, 5, 4, 3, 6)
    with torch.no_grad():
        selected, indices, scores = selector(question, keys, values)
        query = selector.query_norm(selector.query_proj(question))
        logits = torch.einsum("bgch,bh->bgc", selector.key_norm(selector.key_proj(keys)), query)
    probabilities = logits.softmax(-1)
    torch.testing.assert_close(scores, probabilities)
    weights = (probabilities / 0.5).softmax(-1)  # gumbel_softmax(p, tau) with the noise removed
    expected = torch.einsum("bgc,bgcxy->bgxy", weights, values)
    assert selected.shape == (2, 5, 3, 3, 6)
    for draw in range(3):  # the k draws are identically distributed: all the same average
        torch.testing.assert_close(selected[:, :, draw], expected)
    assert torch.equal(indices, probabilities.topk(3, dim=-1).indices)
    # At the NExT-QA temperature the weights are within 1% of uniform: nearly the plain mean.
    selector.config.gumbel_temperature = 100.0
    with torch.no_grad():
        nearly_mean = selector(question, keys, values)[0][:, :, 0]
    torch.testing.assert_close(nearly_mean, values.mean(dim=2), rtol=0, atol=0.05)


def test_expectation_and_topk_give_different_logits_and_training_is_unaffected():
    config = nextqa_config(dropout=0.0, attention_dropout=0.0)
    model = MistForVideoQuestionAnswering(config).eval()
    inputs = random_inputs(config)
    topk = run(model, inputs).logits
    model.config.eval_selection = "expectation"
    expectation = run(model, inputs)
    assert not torch.allclose(expectation.logits, topk)
    torch.testing.assert_close(run(model, inputs).logits, expectation.logits, rtol=0, atol=0)  # deterministic
    assert torch.equal(expectation.segment_indices[0], expectation.segment_scores[0].topk(1).indices)


@pytest.mark.parametrize(
    "options, error, message",
    [
        (
            dict(frame_as_patch_candidate=True, clip_hidden_size=16),
            StrictDataclassClassValidationError,
            r"frame_as_patch_candidate=True puts the raw CLIP frame \(clip_hidden_size=16\) beside the encoded "
            r"patches \(hidden_size=32\)",
        ),
        (
            dict(num_temporal_layers=2),
            StrictDataclassClassValidationError,
            r"num_temporal_layers=2 needs one frame per segment, got num_frames=8 / num_segments=4",
        ),
        (dict(num_temporal_layers=-1), StrictDataclassClassValidationError, r"num_temporal_layers=-1 must be >= 0"),
        (
            dict(question_tokens_in_sequence=False),
            StrictDataclassClassValidationError,
            r"fusion_pooling='first' reads the question's first token, but question_tokens_in_sequence=False",
        ),
        (
            dict(frame_as_patch_candidate=True, clip_hidden_size=32, num_selected_patches=6),
            StrictDataclassClassValidationError,
            r"num_selected_patches=6 must be in \[1, grid_size\*\*2 \+ 1 \(the frame\)=5\]",
        ),
        (dict(gumbel_temperature=0.0), StrictDataclassClassValidationError, r"gumbel_temperature=0.0 must be > 0"),
        (
            dict(segment_normalization="channel"),
            StrictDataclassFieldValidationError,
            r"expected one of \('frame', 'time'\), got channel",
        ),
        (
            dict(fusion_pooling="max"),
            StrictDataclassFieldValidationError,
            r"expected one of \('first', 'mean'\), got max",
        ),
        (
            dict(answer_pooling="last"),
            StrictDataclassFieldValidationError,
            r"expected one of \('cls', 'mean', 'mean_unmasked'\), got last",
        ),
        (
            dict(eval_selection="sample"),
            StrictDataclassFieldValidationError,
            r"expected one of \('topk', 'expectation'\), got sample",
        ),
    ],
)
def test_config_rejects_options_that_cannot_work_and_names_the_value(options, error, message):
    with pytest.raises(error, match=message):
        tiny_config(**options)


def test_options_that_do_not_apply_are_not_validated():
    # STAR keeps every patch: num_selected_patches is unused, so any value passes.
    assert star_config(num_selected_patches=99).tokens_per_kept_frame == 4
    config = MistConfig(
        num_segments=32, num_selected_segments=1, num_selected_patches=16, frame_as_patch_candidate=True
    )
    assert (config.num_patch_candidates, config.sequence_length) == (17, 30 + 32 + 16)
