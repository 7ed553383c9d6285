"""Behaviour of MistModel / MistForVideoQuestionAnswering beyond transformers' common tests."""

import json
import math
import textwrap

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoConfig, AutoModel, BertConfig, BertModel

from modeling_mist import MistConfig, MistForVideoQuestionAnswering, MistModel
from modeling_mist.modeling_mist import MistSelector, grid_box_descriptors
from tests.helpers import run_python
from tests.modeling.mist_testing import ANSWER_LENGTH, BATCH, NUM_ANSWERS, VOCAB, random_inputs, tiny_config


def logits_of(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def test_output_shapes_and_selection_layout(config, inputs):
    model = MistForVideoQuestionAnswering(config).eval()
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True, output_attentions=True)
    k, j, fps = config.num_selected_segments, config.num_selected_patches, config.frames_per_segment
    assert out.logits.shape == (BATCH, NUM_ANSWERS)
    assert out.pooler_output.shape == (BATCH, config.hidden_size)
    assert len(out.segment_indices) == config.num_ista_layers
    assert len(out.hidden_states) == config.num_ista_layers * (config.num_hidden_layers + 1)
    assert out.hidden_states[0].shape == (BATCH, config.sequence_length, config.hidden_size)
    assert len(out.attentions) == config.num_ista_layers * config.num_hidden_layers
    assert out.attentions[0].shape == (
        BATCH,
        config.num_attention_heads,
        config.sequence_length,
        config.sequence_length,
    )
    for layer in range(config.num_ista_layers):
        segments, scores = out.segment_indices[layer], out.segment_scores[layer]
        assert segments.shape == (BATCH, k) and scores.shape == (BATCH, config.num_segments)
        # Eval selection is hard top-k in descending score order.
        assert torch.equal(segments, scores.argsort(dim=-1, descending=True)[:, :k])
        expected_frames = segments[..., None] * fps + torch.arange(fps)
        assert torch.equal(out.frame_indices[layer], expected_frames)
        patches, patch_scores = out.patch_indices[layer], out.patch_scores[layer]
        assert patches.shape == (BATCH, k, fps, j) and patch_scores.shape == (BATCH, k, fps, config.num_patches)
        assert torch.equal(patches, patch_scores.argsort(dim=-1, descending=True)[..., :j])
        torch.testing.assert_close(scores.sum(-1), torch.ones(BATCH))


def test_box_descriptors_follow_the_reference_formula():
    boxes = grid_box_descriptors(grid_size=4, crop_size=224)
    assert boxes.shape == (16, 5)
    # Row 1, column 2 is patch 6 in row-major order.
    expected = torch.tensor([448 / 896, 224 / 896, 672 / 896, 448 / 896, 225 * 225 / 896**2])
    torch.testing.assert_close(boxes[6], expected)
    torch.testing.assert_close(boxes[0, :4], torch.tensor([0.0, 0.0, 0.25, 0.25]))


def test_selector_gather_equals_straight_through_forward():
    config = tiny_config(train_selection="topk")
    selector = MistSelector(config, key_size=config.hidden_size, num_selected=3)
    question = torch.randn(2, config.clip_hidden_size)
    keys = torch.randn(2, 5, 4, config.hidden_size)
    values = torch.randn(2, 5, 4, 3, 6)
    selector.eval()
    gathered, indices, scores = selector(question, keys, values)
    selector.train()
    weighted, train_indices, _ = selector(question, keys, values)
    assert gathered.shape == (2, 5, 3, 3, 6)
    assert torch.equal(indices, train_indices)
    expected = torch.stack([values[b, g, indices[b, g]] for b in range(2) for g in range(5)]).view_as(gathered)
    torch.testing.assert_close(gathered, expected)
    torch.testing.assert_close(weighted, gathered)


def test_eval_is_deterministic_and_gumbel_training_is_not(config, inputs):
    model = MistForVideoQuestionAnswering(config).eval()
    torch.testing.assert_close(logits_of(model, inputs), logits_of(model, inputs), rtol=0, atol=0)
    model.train()
    torch.manual_seed(0)
    first = model(**inputs).pooler_output
    second = model(**inputs).pooler_output
    assert not torch.allclose(first, second)


def test_topk_training_without_dropout_is_deterministic(inputs):
    model = MistForVideoQuestionAnswering(tiny_config(train_selection="topk", dropout=0.0, attention_dropout=0.0))
    model.config.text_config.hidden_dropout_prob = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    torch.testing.assert_close(model(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def test_sdpa_matches_eager_with_padded_questions(tmp_path, config, inputs):
    MistForVideoQuestionAnswering(config).save_pretrained(tmp_path)
    eager = MistForVideoQuestionAnswering.from_pretrained(tmp_path, attn_implementation="eager").eval()
    sdpa = MistForVideoQuestionAnswering.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    assert sdpa.config._attn_implementation == "sdpa"
    torch.testing.assert_close(logits_of(sdpa, inputs), logits_of(eager, inputs), rtol=1e-5, atol=1e-5)


def test_padding_and_batching_do_not_change_answers(config, inputs):
    model = MistForVideoQuestionAnswering(config).eval()
    batched = logits_of(model, inputs)
    for index in range(BATCH):
        single = {
            key: value[index : index + 1] if not key.startswith("answer") else value for key, value in inputs.items()
        }
        length = int(single["attention_mask"].sum())
        single["input_ids"] = single["input_ids"][:, :length]  # no padding at all
        single["attention_mask"] = single["attention_mask"][:, :length]
        torch.testing.assert_close(logits_of(model, single), batched[index : index + 1], rtol=1e-5, atol=1e-5)


def test_precomputed_answer_embeddings_and_multiple_choice(config, inputs):
    model = MistForVideoQuestionAnswering(config).eval()
    with torch.no_grad():
        answer_embeds = model.get_answer_embeddings(inputs["answer_input_ids"], inputs["answer_attention_mask"])
        by_ids = model(**inputs).logits
        rest = {k: v for k, v in inputs.items() if not k.startswith("answer")}
        by_embeds = model(**rest, answer_embeds=answer_embeds).logits
        torch.testing.assert_close(by_embeds, by_ids)
        # Multiple choice: each question has its own 3 candidates, [B, C, La].
        choices = inputs["answer_input_ids"][:3].unsqueeze(0).repeat(BATCH, 1, 1)
        choices[1] = inputs["answer_input_ids"][3:]
        mc = model(**rest, answer_input_ids=choices, answer_attention_mask=torch.ones_like(choices)).logits
    assert mc.shape == (BATCH, 3)
    torch.testing.assert_close(mc[0], by_ids[0, :3])
    torch.testing.assert_close(mc[1], by_ids[1, 3:])


def test_save_load_round_trip_gives_identical_logits(tmp_path, config, inputs):
    config.id2label = {i: f"answer {i}" for i in range(NUM_ANSWERS)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    model = MistForVideoQuestionAnswering(config).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert {"configuration_mist.py", "modeling_mist.py"} <= {p.name for p in tmp_path.iterdir()}
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"] == {
        "AutoConfig": "configuration_mist.MistConfig",
        "AutoModel": "modeling_mist.MistForVideoQuestionAnswering",
    }
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MistConfig)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(reloaded) is MistForVideoQuestionAnswering
    assert reloaded.config.id2label[2] == "answer 2"
    torch.testing.assert_close(logits_of(reloaded, inputs), logits_of(model, inputs), rtol=0, atol=0)


def test_trust_remote_code_load_in_a_clean_interpreter(tmp_path, config, inputs):
    model = MistForVideoQuestionAnswering(config).eval()
    model.save_pretrained(tmp_path / "model")
    torch.save(inputs, tmp_path / "inputs.pt")
    torch.save(logits_of(model, inputs), tmp_path / "expected.pt")
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class BlockProject(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"modeling_mist", "configuration", "processing", "training"}:
                    raise ImportError(f"{name} must not be importable here")

        sys.meta_path.insert(0, BlockProject())
        import torch
        from transformers import AutoModel

        try:
            import modeling_mist  # noqa: F401
            raise SystemExit("the project package is importable: the test proves nothing")
        except ImportError:
            pass
        model = AutoModel.from_pretrained("model", trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            logits = model(**torch.load("inputs.pt")).logits
        torch.testing.assert_close(logits, torch.load("expected.pt"), rtol=0, atol=0)
        print("remote-code logits match")
        """
    )
    env = {"PYTHONPATH": "", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = run_python(["-c", script], cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote-code logits match" in result.stdout


def test_gradient_checkpointing_gives_the_same_gradients(inputs):
    config = tiny_config(train_selection="topk", dropout=0.0, attention_dropout=0.0)
    config.text_config.hidden_dropout_prob = 0.0
    config.text_config.attention_probs_dropout_prob = 0.0
    labels = torch.tensor([0, 3, 5])

    def gradients(checkpointing: bool) -> dict:
        torch.manual_seed(0)
        model = MistForVideoQuestionAnswering(config).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.mist.ista_layers[0].layers[0].gradient_checkpointing
        model(**inputs, labels=labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], msg=name)


def test_loss_decreases_on_a_learnable_problem():
    # The answer is which segment holds a marker patch that matches the question's CLIP embedding.
    config = tiny_config(dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = MistForVideoQuestionAnswering(config).train()
    batch_size = 16
    marker = torch.nn.functional.normalize(torch.randn(config.clip_hidden_size), dim=0)
    inputs = random_inputs(config, batch_size=batch_size, seed=1)
    labels = torch.arange(batch_size) % config.num_segments
    for row, segment in enumerate(labels.tolist()):
        frame = segment * config.frames_per_segment
        inputs["patch_features"][row, frame : frame + config.frames_per_segment, 0] = 5 * marker
        inputs["frame_features"][row, frame : frame + config.frames_per_segment] += 5 * marker
    inputs["question_clip_embeds"] = marker.expand(batch_size, -1).clone()
    inputs["answer_input_ids"] = inputs["answer_input_ids"][: config.num_segments]
    inputs["answer_attention_mask"] = inputs["answer_attention_mask"][: config.num_segments]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(config.num_segments), rel=0.3)
    assert sum(losses[-5:]) / 5 < 0.3 * losses[0]


def test_load_text_encoders_from_a_local_folder(tmp_path, config, inputs):
    same_width = BertModel(BertConfig(**config.text_config.to_dict()), add_pooling_layer=False)
    same_width.save_pretrained(tmp_path / "same")
    model = MistForVideoQuestionAnswering(config).eval()
    untouched = model.mist.ista_layers[0].question_projection.dense.weight.clone()
    model.load_text_encoders(str(tmp_path / "same"))
    for name, tensor in same_width.state_dict().items():
        torch.testing.assert_close(model.mist.question_encoder.state_dict()[name], tensor)
        torch.testing.assert_close(model.answer_encoder.state_dict()[name], tensor)
    torch.testing.assert_close(model.mist.ista_layers[0].question_projection.dense.weight, untouched)
    # two independent encoders: training one leaves the other as loaded
    question_weights = dict(model.mist.question_encoder.named_parameters())
    assert all(
        parameter.data_ptr() != question_weights[name].data_ptr()
        for name, parameter in model.answer_encoder.named_parameters()
    )

    wider = BertModel(
        BertConfig(vocab_size=VOCAB, hidden_size=40, num_hidden_layers=1, num_attention_heads=4, intermediate_size=20)
    )
    wider.save_pretrained(tmp_path / "wider")
    model.load_text_encoders(str(tmp_path / "wider"))
    assert model.config.text_config.hidden_size == 40
    assert model.answer_projection.in_features == 40
    assert model.mist.ista_layers[0].question_projection.dense.in_features == 40
    assert logits_of(model, inputs).shape == (BATCH, NUM_ANSWERS)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda x: x.update(frame_features=x["frame_features"][:, :6]),
            r"frame_features has shape \(3, 6, 16\), expected \(3, 8, 16\)",
        ),
        (
            lambda x: x.update(patch_features=x["patch_features"][:, :, :3]),
            r"patch_features has shape \(3, 8, 3, 16\), expected \(3, 8, 4, 16\)",
        ),
        (
            lambda x: x.update(frame_features=torch.randn(3, 8, 12)),
            r"frame_features has shape \(3, 8, 12\), expected \(3, 8, 16\)",
        ),
        (
            lambda x: x.update(question_clip_embeds=torch.randn(2, 16)),
            r"question_clip_embeds has shape \(2, 16\), expected \(3, 16\)",
        ),
        (
            lambda x: x.update(input_ids=torch.ones(3, 9, dtype=torch.long), attention_mask=None),
            r"input_ids has 9 tokens but config.max_question_length is 7",
        ),
        (
            lambda x: x.update(answer_input_ids=torch.ones(4, dtype=torch.long), answer_attention_mask=None),
            r"answer_input_ids has shape \(4,\); expected \(num_answers, answer_length\)",
        ),
        (
            lambda x: x.update(labels=torch.tensor([0, 6, -3])),
            r"labels \[6, -3\] are out of range: expected indices in \[0, 6\) or -100",
        ),
        (
            lambda x: x.update(answer_embeds=torch.randn(6, 32)),
            r"Pass exactly one of answer_input_ids, answer_features or answer_embeds \(got answer_input_ids and "
            r"answer_embeds\)",
        ),
    ],
)
def test_bad_inputs_get_clear_errors(config, inputs, change, message):
    model = MistForVideoQuestionAnswering(config).eval()
    change(inputs)
    with pytest.raises(ValueError, match=message):
        model(**inputs)


def test_config_rejects_impossible_sizes():
    # huggingface_hub's strict dataclasses wrap the validator's ValueError, keeping its message.
    with pytest.raises(StrictDataclassClassValidationError, match="num_frames=30 must be divisible by num_segments=8"):
        MistConfig(num_frames=30)
    with pytest.raises(
        StrictDataclassClassValidationError, match=r"num_selected_patches=20 must be in \[1, grid_size\*\*2=16\]"
    ):
        MistConfig(num_selected_patches=20)


def test_base_model_returns_the_fused_representation(config, inputs):
    qa = MistForVideoQuestionAnswering(config).eval()
    base_inputs = {k: v for k, v in inputs.items() if not k.startswith("answer")}
    with torch.no_grad():
        fused = qa.mist(**base_inputs).pooler_output
        answers = qa.get_answer_embeddings(inputs["answer_input_ids"], inputs["answer_attention_mask"])
    assert isinstance(qa.mist, MistModel)
    torch.testing.assert_close(logits_of(qa, inputs), fused @ answers.t())
    assert answers.shape == (NUM_ANSWERS, config.hidden_size) and ANSWER_LENGTH == inputs["answer_input_ids"].shape[1]
