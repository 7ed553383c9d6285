"""Training selection rules (`MistConfig.train_selection`) and the Gumbel temperature schedule.

Inference never depends on them; what they change is the gradient the selectors get and what the
transformer sees while training.
"""

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError

from configuration.presets import AGQA, DEMO, NEXTQA, STAR
from modeling_mist import MistConfig, MistForVideoQuestionAnswering
from modeling_mist.modeling_mist import MistSelector, gumbel_top_k
from tests.modeling.mist_testing import random_inputs, tiny_config

RULES = ("gumbel", "gumbel_logits", "gumbel_topk", "gumbel_topk_hard", "topk")
GUMBEL_RULES = ("gumbel", "gumbel_logits", "gumbel_topk", "gumbel_topk_hard")
BATCH, GROUPS, CANDIDATES, SELECTED, VALUE_SIZE = 4, 3, 6, 2, 5


def selector_and_inputs(rule: str, **overrides) -> tuple[MistSelector, dict, torch.Tensor]:
    """A selector with fixed weights, its inputs and a fixed target for a linear loss of the selected values."""
    config = tiny_config(train_selection=rule, **overrides)
    torch.manual_seed(0)
    selector = MistSelector(config, key_size=config.hidden_size, num_selected=SELECTED)
    generator = torch.Generator().manual_seed(1)
    inputs = {
        "question": torch.randn(BATCH, config.clip_hidden_size, generator=generator),
        "keys": torch.randn(BATCH, GROUPS, CANDIDATES, config.hidden_size, generator=generator),
        "values": torch.randn(BATCH, GROUPS, CANDIDATES, VALUE_SIZE, generator=generator),
    }
    target = torch.randn(BATCH, GROUPS, SELECTED, VALUE_SIZE, generator=generator)
    return selector, inputs, target


def projection_gradient_norms(rule: str, seeds=range(4)) -> tuple[float, float]:
    """Mean gradient norm of the query and key projection weights over a few Gumbel draws."""
    query_norms, key_norms = [], []
    for seed in seeds:
        selector, inputs, target = selector_and_inputs(rule)
        selector.train()
        torch.manual_seed(seed)
        selected, _, _ = selector(**inputs)
        (selected * target).sum().backward()
        query_norms.append(selector.query_proj.weight.grad.norm().item())
        key_norms.append(selector.key_proj.weight.grad.norm().item())
    return sum(query_norms) / len(query_norms), sum(key_norms) / len(key_norms)


def selector_logits(selector: MistSelector, question: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The selector's scores before their softmax, `[batch, groups, candidates]`."""
    query = selector.query_norm(selector.query_proj(question))
    return torch.einsum("bgch,bh->bgc", selector.key_norm(selector.key_proj(keys)), query)


@pytest.mark.parametrize("rule", ["gumbel_logits", "gumbel_topk", "gumbel_topk_hard"])
def test_logit_rules_give_the_selector_projections_several_times_the_reference_gradient(rule):
    reference_query, reference_key = projection_gradient_norms("gumbel")
    query, key = projection_gradient_norms(rule)
    # The reference draws from softmax probabilities: two saturating softmaxes shrink its gradient.
    assert reference_query > 0 and reference_key > 0
    assert query > 3 * reference_query and key > 3 * reference_key


def test_hard_gumbel_top_k_is_exactly_one_hot_in_perturbed_order():
    logits = torch.randn(3, 2, CANDIDATES, generator=torch.Generator().manual_seed(0), requires_grad=True)
    torch.manual_seed(5)
    weights, indices = gumbel_top_k(logits, 3, temperature=2.0, hard=True)
    torch.manual_seed(5)
    gumbels = -torch.empty_like(logits).exponential_().log()
    assert torch.equal(indices, (logits + gumbels).topk(3, dim=-1).indices)
    assert torch.equal(weights, F.one_hot(indices, CANDIDATES).to(weights.dtype))  # exact 0 / 1 values
    assert all(len(set(row)) == 3 for row in indices.reshape(-1, 3).tolist())  # without replacement
    (weights * torch.arange(CANDIDATES, dtype=torch.float32)).sum().backward()
    assert logits.grad.abs().sum() > 0  # the relaxation's gradient reaches the logits


def test_soft_gumbel_top_k_is_the_top_k_when_cold_and_independent_draws_when_hot():
    logits = 3 * torch.randn(2, 2, CANDIDATES, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    cold, indices = gumbel_top_k(logits, 3, temperature=1e-3, hard=False)
    torch.testing.assert_close(cold, F.one_hot(indices, CANDIDATES).float(), rtol=0, atol=1e-6)
    torch.manual_seed(1)
    hot, _ = gumbel_top_k(logits, 3, temperature=1e4, hard=False)
    torch.testing.assert_close(hot.sum(-1), torch.ones(2, 2, 3))
    # Hot draws barely discount each other: every draw is close to the uniform weighting.
    torch.testing.assert_close(hot, torch.full_like(hot, 1 / CANDIDATES), rtol=0, atol=1e-3)


@pytest.mark.parametrize("rule", ["topk", "gumbel_topk_hard"])
def test_hard_rules_select_exactly_the_values_they_report(rule):
    selector, inputs, _ = selector_and_inputs(rule)
    selector.train()
    torch.manual_seed(0)
    selected, indices, _ = selector(**inputs)
    gathered = torch.stack(
        [inputs["values"][b, g, indices[b, g]] for b in range(BATCH) for g in range(GROUPS)]
    ).view_as(selected)
    assert torch.equal(selected, gathered)


def test_gumbel_logits_draws_from_the_logits_and_gumbel_from_the_probabilities():
    for rule, uses_logits in (("gumbel_logits", True), ("gumbel", False)):
        selector, inputs, _ = selector_and_inputs(rule, gumbel_temperature=3.0)
        selector.train()
        torch.manual_seed(2)
        selected, _, scores = selector(**inputs)
        logits = selector_logits(selector, inputs["question"], inputs["keys"])
        draws_input = (logits if uses_logits else scores).unsqueeze(2).expand(-1, -1, SELECTED, -1)
        torch.manual_seed(2)
        weights = F.gumbel_softmax(draws_input, tau=3.0, dim=-1)
        torch.testing.assert_close(selected, weights @ inputs["values"])


def test_inference_does_not_depend_on_the_training_rule():
    reference = MistForVideoQuestionAnswering(tiny_config()).eval()
    inputs = random_inputs(reference.config)
    with torch.no_grad():
        expected = reference(**inputs)
    schedule = dict(gumbel_temperature=8.0, gumbel_temperature_end=0.5, gumbel_annealing_steps=3)
    for rule in RULES:
        model = MistForVideoQuestionAnswering(tiny_config(train_selection=rule, **schedule))
        model.load_state_dict(reference.state_dict())
        for module in model.modules():  # part-way through the temperature schedule: inference must not care
            if isinstance(module, MistSelector):
                module.training_forwards.fill_(2)
        model.eval()
        with torch.no_grad():
            outputs = model(**inputs)
        assert torch.equal(outputs.logits, expected.logits), rule
        for name in ("segment_indices", "patch_indices"):
            for layer_value, expected_value in zip(getattr(outputs, name), getattr(expected, name)):
                assert torch.equal(layer_value, expected_value), (rule, name)


def test_expectation_inference_is_the_noise_free_draw_of_the_training_rule():
    for rule in ("gumbel", "gumbel_logits"):
        selector, inputs, _ = selector_and_inputs(
            rule, eval_selection="expectation", gumbel_temperature=8.0, gumbel_temperature_end=2.0,
            gumbel_annealing_steps=10,
        )  # fmt: skip
        selector.eval()
        with torch.no_grad():
            selected, _, scores = selector(**inputs)
            logits = selector_logits(selector, inputs["question"], inputs["keys"])
        weights = ((logits if rule == "gumbel_logits" else scores) / 2.0).softmax(-1)  # the end temperature
        expected = (weights.unsqueeze(2) @ inputs["values"]).expand(-1, -1, SELECTED, -1)  # k identical draws
        torch.testing.assert_close(selected, expected)


@pytest.mark.parametrize("rule", ["gumbel_topk", "gumbel_topk_hard"])
def test_expectation_inference_of_the_top_k_rules_is_their_noise_free_relaxed_top_k(rule):
    selector, inputs, _ = selector_and_inputs(rule, eval_selection="expectation", gumbel_temperature=4.0)
    selector.eval()
    with torch.no_grad():
        selected, _, _ = selector(**inputs)
        logits = selector_logits(selector, inputs["question"], inputs["keys"])
    # by hand: draw i = softmax((logits + log of what earlier draws left) / 4)
    remaining, draws = torch.zeros_like(logits), []
    for _ in range(SELECTED):
        draw = ((logits + remaining) / 4.0).softmax(-1)
        draws.append(draw)
        remaining = remaining + torch.log1p(-draw)
    expected = torch.stack(draws, dim=2) @ inputs["values"]
    torch.testing.assert_close(selected, expected)
    assert not torch.allclose(selected[:, :, 0], selected[:, :, 1])  # distinct draws, unlike the other rules


@pytest.mark.parametrize("rule", GUMBEL_RULES)
def test_training_selection_is_reproducible_under_a_seed(rule):
    model = MistForVideoQuestionAnswering(tiny_config(train_selection=rule, dropout=0.0, attention_dropout=0.0))
    model.config.text_config.hidden_dropout_prob = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    inputs = random_inputs(model.config)

    def draw(seed: int):
        torch.manual_seed(seed)
        outputs = model(**inputs)
        return outputs.logits, torch.cat([indices.flatten() for indices in outputs.segment_indices])

    first_logits, first_indices = draw(3)
    again_logits, again_indices = draw(3)
    assert torch.equal(first_logits, again_logits) and torch.equal(first_indices, again_indices)
    other_logits = torch.stack([draw(seed)[0] for seed in range(4, 8)])
    assert not torch.allclose(other_logits, first_logits.expand_as(other_logits))  # the Gumbel noise matters


def test_temperature_anneals_geometrically_over_training_forwards():
    selector, inputs, _ = selector_and_inputs(
        "gumbel_topk", gumbel_temperature=16.0, gumbel_temperature_end=1.0, gumbel_annealing_steps=4
    )
    selector.train()
    seen = []
    for _ in range(6):
        seen.append(float(selector.temperature()))
        selector(**inputs)
    assert seen == pytest.approx([16.0, 8.0, 4.0, 2.0, 1.0, 1.0], rel=1e-6)
    assert selector.training_forwards.item() == 6
    selector.eval()
    selector(**inputs)
    assert selector.temperature() == 1.0 and selector.training_forwards.item() == 6  # inference does not advance it
    constant, _, _ = selector_and_inputs("gumbel_topk", gumbel_temperature=5.0)
    constant.train()
    constant(**inputs)
    assert constant.temperature() == 5.0


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (dict(train_selection="gumbel_softmax"), StrictDataclassFieldValidationError, r"gumbel_topk_hard"),
        (dict(gumbel_temperature_end=0.0, gumbel_annealing_steps=5), StrictDataclassClassValidationError,
         r"gumbel_temperature_end=0.0 must be > 0"),
        (dict(gumbel_annealing_steps=-1), StrictDataclassClassValidationError, r"gumbel_annealing_steps=-1 must be >= 0"),
        (dict(gumbel_temperature_end=1.0), StrictDataclassClassValidationError,
         r"gumbel_temperature_end=1.0 anneals over gumbel_annealing_steps.*set gumbel_annealing_steps > 0"),
    ],
)  # fmt: skip
def test_config_rejects_unknown_rules_and_incomplete_schedules(overrides, error, message):
    with pytest.raises(error, match=message):
        MistConfig(**overrides)


def test_the_reference_rule_stays_the_default_of_the_paper_presets():
    assert MistConfig().train_selection == "gumbel" and MistConfig().gumbel_temperature_end is None
    for preset in (AGQA, NEXTQA, STAR):
        config = MistConfig(**preset.model)
        assert config.train_selection == "gumbel" and config.gumbel_temperature_end is None, preset.name
        assert config.selection_prior_weight == 0, preset.name  # the reference's loss
    # the demo trains with the CLIP-relevance prior, so that its explanation shows the evidence (README)
    assert MistConfig(**DEMO.model).selection_prior_weight == 0.1


def test_an_annealed_training_step_compiles_once_as_the_temperature_falls():
    torch._dynamo.reset()
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    config = tiny_config(
        train_selection="gumbel_topk", gumbel_temperature=8.0, gumbel_temperature_end=1.0, gumbel_annealing_steps=2
    )
    model = MistForVideoQuestionAnswering(config).train()
    compiled = torch.compile(model, fullgraph=True, backend=counting_backend)
    inputs = random_inputs(config)
    for _ in range(3):
        compiled(**inputs, labels=torch.tensor([0, 1, 2])).loss.backward()
    selector = model.mist.ista_layers[0].segment_selector
    assert selector.training_forwards.item() == 3 and float(selector.temperature()) == pytest.approx(1.0)
    assert len(graphs) == 1  # the schedule's clock is a tensor: no recompilation per step
    torch._dynamo.reset()


# ----- the CLIP-relevance prior on the selectors (selection_prior_weight) -----

PRIOR_VARIANTS = {
    "agqa": {},
    "frame_candidate": dict(
        num_segments=8, num_selected_segments=1, frame_as_patch_candidate=True, hidden_size=16,
        question_tokens_in_sequence=False, fusion_pooling="mean",
    ),
    "no_patch_selection": {"use_patch_selection": False},
    "segments_only": {"selection_prior_on_patches": False},  # patch selectors free of the prior
}  # fmt: skip


def prior_by_hand(config, outputs, inputs) -> torch.Tensor:
    """The prior term written out per question, layer and kept frame."""
    scale, layers = config.selection_prior_scale, len(outputs.segment_scores)
    frames_per_segment = config.num_frames // config.num_segments
    total = 0.0
    for b in range(inputs["frame_features"].shape[0]):
        question = inputs["question_clip_embeds"][b] / inputs["question_clip_embeds"][b].norm()
        frames = inputs["frame_features"][b] / inputs["frame_features"][b].norm(dim=-1, keepdim=True)
        for layer in range(layers):
            cosines = []
            for s in range(config.num_segments):
                segment = frames[s * frames_per_segment : (s + 1) * frames_per_segment].mean(0)
                cosines.append(scale * (segment @ question) / segment.norm())
            prior = torch.stack(cosines).softmax(0)
            total += (prior * (prior.log() - outputs.segment_scores[layer][b].log())).sum() / layers
            if outputs.patch_scores is None or not config.selection_prior_on_patches:
                continue
            kept = outputs.frame_indices[layer][b].flatten()
            scores = outputs.patch_scores[layer][b].reshape(len(kept), -1)
            for frame, frame_scores in zip(kept.tolist(), scores):
                candidates = list(inputs["patch_features"][b, frame])
                if config.frame_as_patch_candidate:
                    candidates.append(inputs["frame_features"][b, frame])
                prior = torch.stack([scale * (c @ question) / c.norm() for c in candidates]).softmax(0)
                total += (prior * (prior.log() - frame_scores.log())).sum() / (layers * len(kept))
    return total / inputs["frame_features"].shape[0]


@pytest.mark.parametrize("variant", PRIOR_VARIANTS)
def test_selection_prior_adds_its_weighted_kl_to_the_loss(variant):
    overrides = dict(dropout=0.0, attention_dropout=0.0, train_selection="topk", **PRIOR_VARIANTS[variant])
    plain_config = tiny_config(**overrides)
    config = tiny_config(selection_prior_weight=0.7, selection_prior_scale=20.0, **overrides)
    torch.manual_seed(0)
    plain = MistForVideoQuestionAnswering(plain_config).train()
    model = MistForVideoQuestionAnswering(config).train()
    model.load_state_dict(plain.state_dict())
    inputs = random_inputs(config)
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        torch.manual_seed(1)  # the same text-encoder dropout in both
        expected_ce = plain(**inputs, labels=labels).loss
        torch.manual_seed(1)
        outputs = model(**inputs, labels=labels)
    expected = expected_ce + 0.7 * prior_by_hand(config, outputs, inputs)
    torch.testing.assert_close(outputs.loss, expected.float(), rtol=1e-5, atol=1e-5)
    assert outputs.loss > expected_ce  # the prior term is a KL of distinct distributions: positive


def test_selection_prior_trains_the_selectors_toward_clip_relevance():
    """A heavy prior weight: a few steps make the first layer's top segment CLIP's most relevant segment for
    every question (the answer loss alone does not: the same steps without the prior leave it where it was)."""
    inputs = random_inputs(tiny_config(), batch_size=8, seed=3)
    labels = torch.arange(8) % 4
    frames = F.normalize(inputs["frame_features"], dim=-1)
    segments = frames.reshape(8, tiny_config().num_segments, -1, frames.shape[-1]).mean(2)
    relevant = torch.einsum("bsd,bd->bs", F.normalize(segments, dim=-1), inputs["question_clip_embeds"]).argmax(-1)

    def hits_after_training(weight: float) -> tuple[float, float]:
        config = tiny_config(dropout=0.0, attention_dropout=0.0, train_selection="topk", selection_prior_weight=weight)
        torch.manual_seed(0)
        model = MistForVideoQuestionAnswering(config).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        before = (model(**inputs).segment_indices[0][:, 0] == relevant).float().mean().item()
        for _ in range(25):
            loss = model(**inputs, labels=labels).loss
            assert torch.isfinite(loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return before, (model(**inputs).segment_indices[0][:, 0] == relevant).float().mean().item()

    before, after = hits_after_training(10.0)
    assert before < 0.5 and after == 1.0
    assert hits_after_training(0.0)[1] < 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"selection_prior_weight": -0.1}, r"selection_prior_weight=-0.1 must be >= 0"),
        ({"selection_prior_scale": 0}, r"selection_prior_scale=0 must be > 0"),
    ],
)
def test_config_rejects_a_negative_prior_weight_or_scale(overrides, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        tiny_config(**overrides)


def test_selection_prior_is_computed_in_float32_under_bf16_autocast():
    config = tiny_config(dropout=0.0, attention_dropout=0.0, train_selection="topk", selection_prior_weight=1.0)
    torch.manual_seed(0)
    model = MistForVideoQuestionAnswering(config).train()
    inputs = random_inputs(config)
    with torch.no_grad():
        outputs = model(**inputs)
        from modeling_mist.modeling_mist import clip_selection_prior_loss

        args = (config, outputs, inputs["frame_features"], inputs["patch_features"], inputs["question_clip_embeds"])
        expected = clip_selection_prior_loss(*args)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = clip_selection_prior_loss(*args)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, expected)
