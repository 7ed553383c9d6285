"""Fine-tune MIST with a plain `transformers.Trainer` on a `datasets.Dataset` of questions and video features.

    python -m training.examples.finetune_with_trainer --questions train.jsonl --features features/ \
        --text-encoder bert-base-uncased --output-dir mist-finetuned [--max-steps 1000] \
        [--config-overrides "num_selected_patches=4,..."]

The questions file has `video_id`, `question`, `answer` (and `choices` for multiple choice); the
features are what `mist extract-features` writes, and the sizes they carry (frames, grid, CLIP width)
are the model's, as in `mist train`. What MIST needs beyond the usual Trainer recipe:

1. the CLIP text embedding of each question (`question_clip_embedding`): the processor computes it
   with `return_question_clip_embeds=True`, once, before training;
2. `labels`: the processor turns answer texts into indices (`labels=`), among the answer vocabulary
   or among each question's `choices`;
3. `TrainingArguments(remove_unused_columns=False)`: rows carry text that only the collator reads;
4. `MistDataCollator`: tokenises the questions and the answer candidates of each batch.
"""

import argparse
import sys

import numpy as np
import torch
from datasets import Dataset, load_dataset, load_from_disk
from transformers import AutoTokenizer, Trainer, TrainingArguments

from configuration.presets import resolve_text_encoder
from modeling_mist import MistConfig, MistForVideoQuestionAnswering, MistProcessor, MistVideoProcessor
from training.collator import MistDataCollator
from training.model_config import fit_config_to_features, parse_config_overrides


def questions_with_features(questions_file: str, features_dir: str) -> Dataset:
    """One row per question with its video's `frame_features [F, D]` and `patch_features [F, P, D]`."""
    questions = load_dataset("json", data_files=questions_file, split="train")
    features = load_from_disk(features_dir).with_format("numpy")
    row_of = {video_id: row for row, video_id in enumerate(features["video_id"])}
    questions = questions.filter(lambda question: question["video_id"] in row_of)

    def add_features(question: dict) -> dict:
        row = features[row_of[question["video_id"]]]
        return {"frame_features": row["frame_features"], "patch_features": row["patch_features"]}

    return questions.map(add_features)


def finetune(
    questions_file: str,
    features_dir: str,
    text_encoder: str,
    output_dir: str,
    clip_model: str = MistVideoProcessor.clip_model_name,
    clip_pretrained: str | None = "openai",
    config_kwargs: dict | None = None,
    **training_kwargs,
) -> tuple[Trainer, str]:
    """Train, save to `output_dir`, and answer the first question; returns (trainer, answer)."""
    dataset = questions_with_features(questions_file, features_dir)
    num_frames, num_patches, clip_width = np.shape(dataset[0]["patch_features"])
    multiple_choice = "choices" in dataset.column_names

    # The model: sizes from the features (fitted as `mist train` fits them: a size the features contradict is
    # refused, naming the overrides that fit), both text encoders from a pretrained BERT-family model.
    sizes, _ = fit_config_to_features(
        dict(config_kwargs or {}), num_frames, num_patches, clip_width, set(config_kwargs or {}), "agqa"
    )
    config = MistConfig(**sizes, task="multiple-choice" if multiple_choice else "open-ended")
    text_encoder = resolve_text_encoder(text_encoder)  # `minilm`: the offline all-MiniLM-L6-v2 package
    if not multiple_choice:
        config.set_answer_vocabulary(sorted(set(dataset["answer"])))
    model = MistForVideoQuestionAnswering(config).load_text_encoders(text_encoder)
    processor = MistProcessor.from_mist_config(
        model.config,
        AutoTokenizer.from_pretrained(text_encoder),
        clip_model_name=clip_model,
        clip_pretrained=clip_pretrained,
    )

    # 1 + 2: CLIP embeddings of the questions and the labels, computed once by the processor.
    def embed_and_label(batch: dict) -> dict:
        choices = {"choices": batch["choices"]} if multiple_choice else {}
        inputs = processor(text=batch["question"], labels=batch["answer"], return_question_clip_embeds=True, **choices)
        return {"question_clip_embedding": inputs["question_clip_embeds"].numpy(), "labels": inputs["labels"].numpy()}

    dataset = dataset.map(embed_and_label, batched=True, batch_size=256)
    dataset = dataset.with_format(
        "numpy",
        columns=["frame_features", "patch_features", "question_clip_embedding", "labels"],
        output_all_columns=True,
    )

    # 3 + 4: keep the text columns for the collator, which tokenises questions and candidates per batch.
    collator = MistDataCollator(processor, config=model.config)  # the task: the config's vocabulary or choices
    args = TrainingArguments(output_dir=output_dir, remove_unused_columns=False, report_to="none", **training_kwargs)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=processor)
    trainer.train()
    trainer.save_model()  # the model, its processor (CLIP choice, tokenizer, answer vocabulary) and config

    # Answer the first question with the trained model.
    model.eval()
    batch = collator([dataset[0]])
    batch.pop("labels")
    with torch.no_grad():
        logits = model(**{name: value.to(model.device) for name, value in batch.items()}).logits
    best = logits.argmax(-1).item()
    candidates = list(dataset[0]["choices"]) if multiple_choice else processor.answer_vocabulary
    return trainer, candidates[best]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--questions", required=True, help="questions file (jsonl): video_id, question, answer[, choices]"
    )
    parser.add_argument("--features", required=True, help="features folder written by `mist extract-features`")
    parser.add_argument(
        "--text-encoder",
        default="bert-base-uncased",
        help="BERT-family model (name or folder) for both text encoders; 'minilm': the offline all-MiniLM-L6-v2",
    )
    parser.add_argument("--output-dir", required=True, help="where the fine-tuned model is saved")
    parser.add_argument(
        "--clip-model", default=MistVideoProcessor.clip_model_name, help="open_clip model that made the features"
    )
    parser.add_argument("--clip-pretrained", default="openai", help="its weights (open_clip tag or file)")
    parser.add_argument("--max-steps", type=int, default=1000, help="training steps")
    parser.add_argument("--learning-rate", type=float, default=3e-5, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=32, help="questions per batch")
    parser.add_argument("--config-overrides", help="MistConfig sizes, e.g. 'num_selected_patches=4,hidden_size=256'")
    args = parser.parse_args(argv)
    try:
        _, answer = finetune(
            args.questions,
            args.features,
            args.text_encoder,
            args.output_dir,
            clip_model=args.clip_model,
            clip_pretrained=args.clip_pretrained,
            config_kwargs=parse_config_overrides(args.config_overrides),
            max_steps=args.max_steps,
            learning_rate=args.learning_rate,
            per_device_train_batch_size=args.batch_size,
        )
    except ValueError as error:  # sizes the features contradict, an unreadable override
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    print(f"saved to {args.output_dir}; its answer to the first question: {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
