"""A frozen answer encoder runs once per vocabulary in training (`MistTrainer.training_step`), and training with
that cache gives the same weights as running the encoder at every step."""

import copy

import torch
from transformers import Trainer, TrainingArguments

from modeling_mist import MistConfig, MistForVideoQuestionAnswering
from training.factory import freeze_text_encoders
from training.trainer import MistTrainer

VOCAB, QUESTION_LENGTH, NUM_ANSWERS, ANSWER_LENGTH, ROWS = 50, 5, 6, 4, 12


def tiny_model() -> MistForVideoQuestionAnswering:
    text_config = {"vocab_size": VOCAB, "hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 4,
                       "intermediate_size": 37, "max_position_embeddings": 32, "hidden_dropout_prob": 0.0,
                       "attention_probs_dropout_prob": 0.0}  # fmt: skip
    config = MistConfig(
        text_config=text_config, num_frames=8, num_segments=4, grid_size=2, clip_hidden_size=16, hidden_size=32,
        box_hidden_size=8, intermediate_size=37, num_attention_heads=4, num_hidden_layers=1, num_ista_layers=2,
        num_selected_segments=2, num_selected_patches=2, max_question_length=QUESTION_LENGTH,
        max_answer_length=ANSWER_LENGTH, dropout=0.0, attention_dropout=0.0, train_selection="topk",
        id2label={index: f"answer {index}" for index in range(NUM_ANSWERS)},
    )  # fmt: skip
    torch.manual_seed(0)
    return MistForVideoQuestionAnswering(config)


def rows() -> list[dict]:
    generator = torch.Generator().manual_seed(1)
    return [
        {
            "frame_features": torch.randn(8, 16, generator=generator),
            "patch_features": torch.randn(8, 4, 16, generator=generator),
            "input_ids": torch.randint(1, VOCAB, (QUESTION_LENGTH,), generator=generator),
            "question_clip_embeds": torch.randn(16, generator=generator),
            "labels": index % NUM_ANSWERS,
        }
        for index in range(ROWS)
    ]


VOCABULARY_IDS = torch.randint(1, VOCAB, (NUM_ANSWERS, ANSWER_LENGTH), generator=torch.Generator().manual_seed(2))


def collate(examples: list[dict]) -> dict:
    batch = {key: torch.stack([example[key] for example in examples]) for key in examples[0] if key != "labels"}
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    batch["labels"] = torch.tensor([example["labels"] for example in examples])
    batch["answer_input_ids"] = VOCABULARY_IDS.clone()  # a fresh copy per batch, as the collator gives
    batch["answer_attention_mask"] = torch.ones_like(VOCABULARY_IDS)
    return batch


def train(model, tmp_path, trainer_class=MistTrainer) -> int:
    """Three training steps; returns how many times the answer encoder ran."""
    calls = []
    hook = model.answer_encoder.register_forward_hook(lambda *_: calls.append(1))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, num_train_epochs=1,
                             learning_rate=1e-2, use_cpu=True, report_to="none", disable_tqdm=True,
                             save_strategy="no", seed=0, optim="adamw_torch")  # fmt: skip
    args.remove_unused_columns = False
    trainer = trainer_class(model=model, args=args, data_collator=collate, train_dataset=rows())
    trainer.model_accepts_loss_kwargs = False
    trainer.train()
    hook.remove()
    return len(calls)


def test_answer_features_give_the_answer_input_ids_logits_and_gradients():
    model = tiny_model().train()
    inputs = collate(rows()[:3])
    ids, mask = inputs.pop("answer_input_ids"), inputs.pop("answer_attention_mask")
    expected = model(**inputs, answer_input_ids=ids, answer_attention_mask=mask)
    expected.loss.backward()
    expected_grad = model.answer_projection.weight.grad.clone()
    model.zero_grad()
    with torch.no_grad():
        features = model.get_answer_features(ids, mask)
    assert features.shape == (NUM_ANSWERS, model.config.text_config.hidden_size)
    outputs = model(**inputs, answer_features=features)
    outputs.loss.backward()
    torch.testing.assert_close(outputs.logits, expected.logits)
    torch.testing.assert_close(model.answer_projection.weight.grad, expected_grad)


def test_a_frozen_answer_encoder_runs_once_and_trains_the_same_weights(tmp_path):
    cached, every_step = tiny_model(), tiny_model()
    freeze_text_encoders(cached)
    freeze_text_encoders(every_step)

    class EveryStepTrainer(MistTrainer):  # MistTrainer without the frozen-encoder cache
        def training_step(self, model, inputs, num_items_in_batch=None):
            return Trainer.training_step(self, model, inputs, num_items_in_batch)

    assert train(cached, tmp_path / "cached") == 1  # 3 steps, one encoding
    assert train(every_step, tmp_path / "every", EveryStepTrainer) == 3
    for (name, weight), other in zip(cached.state_dict().items(), every_step.state_dict().values(), strict=True):
        torch.testing.assert_close(weight, other, msg=lambda message, name=name: f"{name}: {message}")
    assert not torch.equal(cached.answer_projection.weight, tiny_model().answer_projection.weight)  # it trained


def test_an_answer_encoder_that_trains_runs_every_step(tmp_path):
    model = tiny_model()
    before = copy.deepcopy(model.answer_encoder.state_dict())
    assert train(model, tmp_path) == 3
    changed = [
        name for name, weight in model.answer_encoder.state_dict().items() if not torch.equal(weight, before[name])
    ]
    assert changed  # the encoder was trained, not cached


def test_the_cache_follows_the_vocabulary(tmp_path):
    model = tiny_model()
    freeze_text_encoders(model)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = MistTrainer(model=model, args=args)
    first = trainer._frozen_answer_features(model, VOCABULARY_IDS.clone(), None)
    assert trainer._frozen_answer_features(model, VOCABULARY_IDS.clone(), None) is first
    changed = VOCABULARY_IDS.clone()
    changed[0, 0] = (changed[0, 0] + 1) % VOCAB
    second = trainer._frozen_answer_features(model, changed, None)
    assert second is not first and not torch.equal(second[0], first[0])
    torch.testing.assert_close(second[1:], first[1:])
    assert model.answer_encoder.training  # put back in training mode after the no-dropout pass
