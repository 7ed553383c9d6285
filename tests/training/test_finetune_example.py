"""`training/examples/finetune_with_trainer.py`, the README's "Fine-tune from Python" recipe, at tiny sizes."""

import numpy as np
from transformers import AutoModel, AutoProcessor

from tests.training.training_testing import question_rows, write_jsonl
from training.examples.finetune_with_trainer import finetune, questions_with_features

TINY_SIZES = dict(
    num_segments=4,
    num_selected_patches=2,
    hidden_size=32,
    box_hidden_size=8,
    intermediate_size=37,
    num_attention_heads=4,
    max_question_length=12,
    max_answer_length=6,
    dropout=0.0,
    attention_dropout=0.0,
    crop_size=224,  # the tiny CLIP's image size
)


def test_recipe_trains_saves_and_answers(tiny_task, text_encoder_dir, clip_model_name, tmp_path):
    rows = [
        {k: v for k, v in row.items() if k != "question_clip_embedding"} for row in question_rows(tiny_task[0], "train")
    ]
    rows.append({**rows[0], "question_id": "lost", "video_id": "never_extracted"})
    questions_file = write_jsonl(tmp_path / "train.jsonl", rows)
    joined = questions_with_features(str(questions_file), str(tiny_task[1]))
    assert len(joined) == 48 and np.shape(joined[0]["patch_features"]) == (
        8,
        4,
        16,
    )  # the unextracted video is left out

    trainer, answer = finetune(
        str(questions_file),
        str(tiny_task[1]),
        str(text_encoder_dir),
        str(tmp_path / "out"),
        clip_model=clip_model_name,
        clip_pretrained=None,
        config_kwargs=TINY_SIZES,
        max_steps=3,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        use_cpu=True,
        disable_tqdm=True,
    )
    assert trainer.state.global_step == 3 and np.isfinite(trainer.state.log_history[-1]["train_loss"])
    processor = AutoProcessor.from_pretrained(str(tmp_path / "out"))
    model = AutoModel.from_pretrained(str(tmp_path / "out"))
    vocabulary = sorted({row["answer"] for row in rows})
    assert processor.answer_vocabulary == vocabulary and list(model.config.id2label.values()) == vocabulary
    assert (model.config.num_frames, model.config.grid_size, model.config.clip_hidden_size) == (
        8,
        2,
        16,
    )  # from the features
    assert answer in vocabulary

    # what the recipe computed per question: the processor's CLIP embedding and the answer's index
    first = trainer.train_dataset[0]
    expected = processor.video_processor.encode_text([rows[0]["question"]])[0].numpy()
    np.testing.assert_allclose(first["question_clip_embedding"], expected, rtol=1e-5, atol=1e-6)
    assert int(first["labels"]) == vocabulary.index(rows[0]["answer"])
