"""One owner for the task definition: MistConfig declares it, the processor builds candidates from it,
and the evaluation path embeds a shared vocabulary once per evaluation."""

import json

import pytest
import torch
from transformers import BertTokenizer

from modeling_mist import MistConfig, MistProcessor
from training.trainer import MistTrainer

NEXTQA_TEMPLATE = "{question} {sep} {choice}"


def test_config_declares_and_saves_the_task_definition(tmp_path):
    config = MistConfig(task="multiple-choice", choice_template=NEXTQA_TEMPLATE)
    assert config.multiple_choice and config.answer_vocabulary is None
    with pytest.raises(ValueError, match="multiple-choice config has no answer vocabulary"):
        config.set_answer_vocabulary(["a"])
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["task"] == "multiple-choice" and saved["choice_template"] == NEXTQA_TEMPLATE

    open_ended = MistConfig()
    assert open_ended.answer_vocabulary is None  # transformers' placeholder labels are no vocabulary
    open_ended.set_answer_vocabulary(["cup", "box"])
    assert open_ended.answer_vocabulary == ["cup", "box"] and open_ended.label2id == {"cup": 0, "box": 1}
    with pytest.raises(ValueError, match="empty"):
        open_ended.set_answer_vocabulary([])
    with pytest.raises(Exception, match="must contain"):
        MistConfig(choice_template="{question} only")


def test_processor_builds_candidates_from_the_config(text_encoder_dir, tmp_path):
    tokenizer = BertTokenizer.from_pretrained(str(text_encoder_dir))
    config = MistConfig(task="multiple-choice", choice_template=NEXTQA_TEMPLATE, max_answer_length=12)
    processor = MistProcessor.from_mist_config(config, tokenizer, clip_pretrained=None)
    assert processor.answer_candidates("why?", ["yes", "no"]) == ["why? [SEP] yes", "why? [SEP] no"]
    with pytest.raises(ValueError, match="no answer vocabulary"):
        processor.answer_candidates("why?")

    # one sequence per candidate, token type 0: [CLS] why ? [SEP] yes [SEP]
    batch = processor(text=["why?"], choices=[["yes", "no"]])
    assert batch["answer_input_ids"].shape == (1, 2, 6)
    assert tokenizer.decode(batch["answer_input_ids"][0, 0]) == "[CLS] why? [SEP] yes [SEP]"
    assert "answer_token_type_ids" not in batch

    processor.save_pretrained(tmp_path)
    reloaded = MistProcessor.from_pretrained(tmp_path)
    assert reloaded.choice_template == NEXTQA_TEMPLATE
    assert reloaded.answer_candidates("how?", ["a"]) == ["how? [SEP] a"]


def test_long_questions_are_cut_to_the_config_limit_whatever_the_tokenizer_carries(text_encoder_dir):
    config = MistConfig(max_question_length=6)
    for saved_limit in (None, 128):
        kwargs = {} if saved_limit is None else {"model_max_length": saved_limit, "max_length": saved_limit}
        tokenizer = BertTokenizer.from_pretrained(str(text_encoder_dir), **kwargs)
        processor = MistProcessor.from_mist_config(config, tokenizer, clip_pretrained=None)
        batch = processor(text=["what appeared together with the cup " * 6], answers=["cup"])
        assert batch["input_ids"].shape == (1, 6)
        assert batch["input_ids"][0, -1].item() == tokenizer.sep_token_id


class _CountingModel(torch.nn.Module):
    """Stands in for MIST: counts answer encodings, scores every answer by its embedding's sum."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.encodings = 0

    def get_answer_embeddings(self, answer_input_ids, answer_attention_mask=None):
        self.encodings += 1
        return answer_input_ids.float() * self.scale

    def forward(self, question, answer_embeds=None, labels=None, **kwargs):
        logits = question[:, None] * answer_embeds.sum(-1)[None, :]  # [batch, answers]
        return {"logits": logits}


def test_evaluation_embeds_a_shared_vocabulary_once(tmp_path):
    from transformers import TrainingArguments

    vocabulary_ids = torch.tensor([[1, 2], [3, 4], [5, 6]])
    rows = [{"question": float(index)} for index in range(10)]

    def collate(examples):
        return {
            "question": torch.tensor([example["question"] for example in examples]),
            "answer_input_ids": vocabulary_ids.clone(),  # a fresh copy per batch, as the collator gives
            "answer_attention_mask": torch.ones_like(vocabulary_ids),
        }

    model = _CountingModel()
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_eval_batch_size=3, use_cpu=True, report_to="none", disable_tqdm=True
    )
    args.remove_unused_columns = False
    trainer = MistTrainer(model=model, args=args, data_collator=collate)
    predictions = trainer.predict(rows).predictions
    assert model.encodings == 1  # 4 batches, one encoding
    assert predictions.shape == (10, 3) and predictions[2].tolist() == pytest.approx([6.0, 14.0, 22.0])
    trainer.predict(rows)
    assert model.encodings == 1  # same step, same answers: still cached
    trainer.state.global_step += 1  # the weights may have changed
    trainer.predict(rows)
    assert model.encodings == 2
