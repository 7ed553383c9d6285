"""MistDataCollator: shapes, masks, labels, multiple-choice formatting, the zeroed-video baseline."""

import numpy as np
import pytest
import torch
from transformers import BertTokenizer

from modeling_mist import MistConfig, MistProcessor
from modeling_mist.processing_mist import format_choices
from training.collator import MistDataCollator

FRAMES, PATCHES, WIDTH = 8, 4, 16
VOCABULARY = ["cup", "box", "yes", "no", "red cup"]


@pytest.fixture(scope="module")
def processor(text_encoder_dir):
    config = MistConfig(
        num_frames=FRAMES,
        num_segments=4,
        grid_size=2,
        num_selected_patches=2,
        clip_hidden_size=WIDTH,
        max_question_length=6,
        max_answer_length=4,
    )
    config.id2label = dict(enumerate(VOCABULARY))
    tokenizer = BertTokenizer.from_pretrained(str(text_encoder_dir))
    return MistProcessor.from_mist_config(config, tokenizer, clip_pretrained=None)


def example(question: str, label: int | None = 0, seed: int = 0, choices=None) -> dict:
    rng = np.random.default_rng(seed)
    item = {
        "question": question,
        "frame_features": rng.standard_normal((FRAMES, WIDTH)).astype(np.float16),
        "patch_features": rng.standard_normal((FRAMES, PATCHES, WIDTH)).astype(np.float16),
        "question_clip_embedding": rng.standard_normal(WIDTH).astype(np.float32),
    }
    if label is not None:
        item["labels"] = label
    if choices is not None:
        item["choices"] = choices
    return item


def test_open_ended_batch(processor):
    collator = MistDataCollator(processor, answer_vocabulary=VOCABULARY)
    examples = [
        example("what appeared?", 1, seed=1),
        example("what appeared together with the red cup before the end?", 4, seed=2),
    ]
    batch = collator(examples)
    assert batch["frame_features"].shape == (2, FRAMES, WIDTH) and batch["frame_features"].dtype == torch.float32
    assert batch["patch_features"].shape == (2, FRAMES, PATCHES, WIDTH)
    torch.testing.assert_close(
        batch["patch_features"][1], torch.from_numpy(examples[1]["patch_features"].astype(np.float32))
    )
    assert batch["question_clip_embeds"].shape == (2, WIDTH)
    # questions: [CLS] what appeared ? [SEP] padded to the longest, the long one cut at max_question_length=6
    assert batch["input_ids"].shape == (2, 6)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]
    assert batch["input_ids"][0, 4].item() == processor.tokenizer.sep_token_id
    assert batch["input_ids"][1, 5].item() == processor.tokenizer.sep_token_id  # truncation keeps [SEP]
    # the shared vocabulary: [A, La] with "red cup" the longest answer ([CLS] red cup [SEP])
    assert batch["answer_input_ids"].shape == (5, 4)
    assert batch["answer_attention_mask"].sum(dim=1).tolist() == [3, 3, 3, 3, 4]
    assert batch["labels"].tolist() == [1, 4]


def test_multiple_choice_batch_pairs_question_and_choice(processor):
    collator = MistDataCollator(processor, choice_template="{question} {sep} {choice}")
    examples = [
        example("why?", 2, choices=["yes", "no", "red cup"]),
        example("how?", 0, choices=["cup", "box", "no"]),
    ]
    batch = collator(examples)
    assert batch["answer_input_ids"].shape[:2] == (2, 3)
    first = processor.tokenizer.decode(batch["answer_input_ids"][0, 2], skip_special_tokens=False)
    assert first.replace(" [PAD]", "") == "[CLS] why? [SEP]"  # max_answer_length=4 keeps question and [SEP]
    assert batch["labels"].tolist() == [2, 0]
    assert format_choices("why?", ["yes"], "{question} {sep} {choice}", "[SEP]") == ["why? [SEP] yes"]


def test_examples_without_labels_give_no_labels(processor):
    batch = MistDataCollator(processor, answer_vocabulary=VOCABULARY)([example("what?", None)])
    assert "labels" not in batch


def test_zero_video_baseline_zeroes_only_the_video(processor):
    batch = MistDataCollator(processor, answer_vocabulary=VOCABULARY, zero_video=True)([example("what?", 0)])
    assert batch["frame_features"].abs().sum() == 0 and batch["patch_features"].abs().sum() == 0
    assert batch["question_clip_embeds"].abs().sum() > 0


def test_errors_name_the_problem(processor):
    collator = MistDataCollator(processor, answer_vocabulary=VOCABULARY)
    missing = example("what?", 0)
    del missing["question_clip_embedding"]
    with pytest.raises(ValueError, match="question_clip_embedding"):
        collator([missing])
    with pytest.raises(ValueError, match="choices"):
        MistDataCollator(processor)([example("what?", 0)])
    uneven = [example("a?", 0, choices=["yes", "no"]), example("b?", 0, choices=["yes", "no", "cup"])]
    with pytest.raises(ValueError, match="choices"):
        MistDataCollator(processor)(uneven)


def test_the_task_is_the_configs(processor, text_encoder_dir):
    open_ended = MistConfig(num_frames=FRAMES, num_segments=4, grid_size=2, num_selected_patches=2)
    open_ended.set_answer_vocabulary(["no", "yes"])  # not the processor's copy: the config decides
    batch = MistDataCollator(processor, config=open_ended)([example("what?", 1)])
    assert batch["answer_input_ids"].shape[0] == 2 and batch["labels"].tolist() == [1]
    assert processor.tokenizer.decode(batch["answer_input_ids"][1], skip_special_tokens=True) == "yes"

    paired = MistConfig(task="multiple-choice", choice_template="{question} {sep} {choice}", num_frames=FRAMES,
                        num_segments=4, grid_size=2, num_selected_patches=2)  # fmt: skip
    collator = MistDataCollator(processor, config=paired)
    batch = collator([example("why?", 0, choices=["yes", "no"])])
    assert batch["answer_input_ids"].shape[:2] == (1, 2)
    first = processor.tokenizer.decode(batch["answer_input_ids"][0, 0], skip_special_tokens=False)
    assert first.replace(" [PAD]", "") == "[CLS] why? [SEP]"  # the config's template (max_answer_length=4)
    assert processor.choice_template == "{choice}"  # the processor given is left as it was
    with pytest.raises(ValueError, match="examples have no choices"):
        collator([example("why?", 0)])


def test_the_collators_own_task_arguments_are_deprecated(processor):
    with pytest.warns(FutureWarning, match=r"MistDataCollator\(answer_vocabulary=\.\.\.\) is deprecated"):
        MistDataCollator(processor, answer_vocabulary=VOCABULARY)
    with pytest.raises(ValueError) as raised:
        MistDataCollator(processor, answer_vocabulary=VOCABULARY, config=MistConfig())
    assert str(raised.value) == (
        "MistDataCollator got config and answer_vocabulary: the task definition is the config's; leave "
        "answer_vocabulary out"
    )
