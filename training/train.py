"""`mist train`: train MIST on a question dataset and its video features with the transformers Trainer.

    mist train --dataset DATA --features FEATURES --output-dir OUT [--preset agqa|nextqa|star|demo|tiny]
               [--text-encoder NAME_OR_PATH] [--config_overrides "hidden_size=256,..."]
               [any TrainingArguments flag: --max_steps, --learning_rate, --per_device_train_batch_size, ...]

Open-ended or multiple choice follows from the data (a `choices` column). The preset defaults to
`nextqa` for multiple choice and `agqa` otherwise. OUT receives a complete `save_pretrained` model
and processor (answer vocabulary in `config.id2label`), a README.md model card, and the metrics.
Run under `torchrun` or `accelerate launch` to train on several processes.
"""

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from datasets import DatasetDict
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig, AutoTokenizer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from configuration.arguments import build_model_config_kwargs, parse_with_preset
from configuration.presets import Preset, resolve_text_encoder
from modeling_mist import MistConfig, MistForVideoQuestionAnswering, MistProcessor
from processing.question_embeddings import EMBEDDING_COLUMN, embed_unique

from .collator import MistDataCollator
from .data import (
    MistQuestionDataset,
    VideoFeatureStore,
    build_answer_vocabulary,
    get_split,
    is_multiple_choice,
    load_features,
    load_questions,
    read_answer_vocabulary,
)
from .model_card import write_model_card
from .trainer import OPEN_ENDED_TOP_K, MistTrainer, build_compute_metrics, rank_candidates

logger = logging.getLogger("mist.train")


@dataclass
class TrainScriptArguments:
    """Data and model choices of `mist train` (training hyperparameters are `TrainingArguments`)."""

    dataset: str | None = field(
        default=None,
        metadata={"help": "questions: folder of {train,validation,test}.jsonl/parquet, save_to_disk folder or Hub id"},
    )
    features: str | None = field(
        default=None, metadata={"help": "video features from `mist extract-features` (save_to_disk folder or Hub id)"}
    )
    preset: str | None = field(
        default=None,
        metadata={"help": "agqa, nextqa, star, demo or tiny (default: nextqa for multiple choice, else agqa)"},
    )
    text_encoder: str | None = field(
        default=None,
        metadata={"help": "BERT-family encoder (name or folder) for both text encoders; default: the preset's"},
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer name or folder (default: the text encoder's)"}
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "MistConfig overrides, e.g. 'hidden_size=256,dropout=0.1,train_selection=topk'"}
    )
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    eval_split: str | None = field(default="validation", metadata={"help": "split evaluated during and after training"})
    test_split: str | None = field(default="test", metadata={"help": "split evaluated once after training, if present"})
    features_split: str = field(default="train", metadata={"help": "split of a Hub features dataset"})
    answer_vocabulary: str | None = field(
        default=None,
        metadata={"help": "open-ended answers (JSON list or answer->index object); default: train answers"},
    )
    freeze_text_encoders: bool | None = field(
        default=None, metadata={"help": "keep both text encoders fixed (default: the preset's choice)"}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "use the first N training questions"})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "use the first N questions of each evaluated split"}
    )
    clip_model: str = field(default="ViT-B-32-quickgelu", metadata={"help": "open_clip model of the processor"})
    clip_pretrained: str | None = field(
        default="openai", metadata={"help": "open_clip weights (tag or file; 'none' for random, tests only)"}
    )


def default_preset(script_args: TrainScriptArguments) -> str:
    """`nextqa` when the training questions have choices, `agqa` otherwise."""
    splits = load_questions(_required(script_args.dataset, "--dataset"))
    return "nextqa" if is_multiple_choice(get_split(splits, script_args.train_split, script_args.dataset)) else "agqa"


def _required(value, flag: str):
    if value is None:
        raise ValueError(f"{flag} is required")
    return value


# --- model and processor ----------------------------------------------------------------------------


def build_model(
    preset: Preset,
    config_overrides: str | None,
    text_encoder: str | None,
    tokenizer,
    answer_vocabulary: list[str] | None,
    choice_template: str | None = None,
) -> MistForVideoQuestionAnswering:
    """A fresh MIST for the preset, its text encoders loaded from `text_encoder` when given."""
    kwargs = build_model_config_kwargs(preset, config_overrides)
    if text_encoder is not None:
        # Size the config from the pretrained encoder so no throwaway default-size encoder is built.
        kwargs["text_config"] = AutoConfig.from_pretrained(text_encoder).to_dict()
    else:
        kwargs.setdefault("text_config", {"model_type": "bert"})
        kwargs["text_config"] = {**kwargs["text_config"], "vocab_size": len(tokenizer)}
    if answer_vocabulary is not None:
        kwargs["id2label"] = dict(enumerate(answer_vocabulary))
        kwargs["label2id"] = {answer: index for index, answer in enumerate(answer_vocabulary)}
    if choice_template is not None:
        # Multiple choice: how a candidate becomes the answer encoder's text, kept for evaluate/predict.
        kwargs["choice_template"] = choice_template
    config = MistConfig(**kwargs)  # validates the sizes
    model = MistForVideoQuestionAnswering(config)
    if text_encoder is not None:
        model.load_text_encoders(text_encoder)
    return model


def freeze_text_encoders(model: MistForVideoQuestionAnswering) -> None:
    """Stop training the question and answer encoders (the Trainer optimises only trainable parameters)."""
    model.mist.question_encoder.requires_grad_(False)
    model.answer_encoder.requires_grad_(False)


def build_processor(
    config: MistConfig, tokenizer_source: str, clip_model: str, clip_pretrained: str | None
) -> MistProcessor:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    return MistProcessor.from_mist_config(
        config, tokenizer, clip_model_name=clip_model, clip_pretrained=clip_pretrained
    )


def add_question_clip_embeddings(splits: DatasetDict, processor: MistProcessor) -> DatasetDict:
    """Fill in `question_clip_embedding` with the processor's CLIP text tower where a split lacks it."""
    for name, questions in splits.items():
        if EMBEDDING_COLUMN in questions.column_names:
            continue
        logger.info("computing CLIP embeddings of %d %s questions", len(questions), name)
        embeddings = embed_unique(questions["question"], processor.video_processor.encode_text)
        splits[name] = questions.add_column(
            EMBEDDING_COLUMN, [embeddings[text].tolist() for text in questions["question"]]
        )
    return splits


def make_collator(processor: MistProcessor, config: MistConfig, zero_video: bool = False) -> MistDataCollator:
    vocabulary = None if getattr(config, "choice_template", None) else processor.answer_vocabulary
    return MistDataCollator(
        processor=processor,
        answer_vocabulary=vocabulary,
        choice_template=getattr(config, "choice_template", None) or "{choice}",
        zero_video=zero_video,
    )


def make_trainer(
    model: MistForVideoQuestionAnswering,
    processor: MistProcessor,
    training_args: TrainingArguments,
    train_dataset: MistQuestionDataset | None,
    eval_dataset: MistQuestionDataset | None,
    zero_video: bool = False,
    model_card=None,
) -> MistTrainer:
    """A `MistTrainer` with the collator and metrics that fit the task."""
    training_args.remove_unused_columns = False  # examples carry text that only the collator reads
    training_args.label_names = ["labels"]
    open_ended = eval_dataset is not None and not eval_dataset.multiple_choice
    top_k = OPEN_ENDED_TOP_K if open_ended else None
    return MistTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=make_collator(processor, model.config, zero_video=zero_video),
        processing_class=processor,
        compute_metrics=build_compute_metrics(eval_dataset.column("question_type"), top_k) if eval_dataset else None,
        preprocess_logits_for_metrics=rank_candidates(top_k or 1),
        model_card=model_card,
    )


def limit(questions, max_samples: int | None):
    return questions.select(range(min(max_samples, len(questions)))) if max_samples else questions


# --- command line -----------------------------------------------------------------------------------


def train(script_args: TrainScriptArguments, training_args: TrainingArguments, preset: Preset) -> dict:
    """Train, evaluate, save; returns the results per evaluated split."""
    dataset, features_source = (
        _required(script_args.dataset, "--dataset"),
        _required(script_args.features, "--features"),
    )
    splits = load_questions(dataset)
    train_questions = limit(get_split(splits, script_args.train_split, dataset), script_args.max_train_samples)
    evaluated = {}
    for split in (script_args.eval_split, script_args.test_split):
        if split and any(alias in splits for alias in (split, "val" if split == "validation" else split)):
            evaluated[split] = limit(get_split(splits, split, dataset), script_args.max_eval_samples)
    if script_args.eval_split and script_args.eval_split not in evaluated and training_args.eval_strategy != "no":
        logger.warning("no %r split: evaluation during training is off", script_args.eval_split)
        training_args.eval_strategy = "no"
        training_args.load_best_model_at_end = False

    multiple_choice = is_multiple_choice(train_questions)
    task = "multiple-choice" if multiple_choice else "open-ended"
    if preset.task is not None and preset.task != task:
        logger.warning("preset %r is for %s questions but the data are %s", preset.name, preset.task, task)
    vocabulary = None
    if not multiple_choice:
        vocabulary = (
            read_answer_vocabulary(script_args.answer_vocabulary)
            if script_args.answer_vocabulary
            else build_answer_vocabulary(train_questions)
        )
        logger.info("answer vocabulary: %d answers", len(vocabulary))

    text_encoder = resolve_text_encoder(script_args.text_encoder or preset.text_encoder)
    tokenizer_source = script_args.tokenizer or text_encoder
    if tokenizer_source is None:
        raise ValueError(f"preset {preset.name!r} has no text encoder: pass --text-encoder or --tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    set_seed(training_args.seed)  # the model is built before the Trainer seeds: seed its initialisation here
    model = build_model(
        preset,
        script_args.config_overrides,
        text_encoder,
        tokenizer,
        vocabulary,
        choice_template=preset.choice_template if multiple_choice else None,
    )
    freeze = script_args.freeze_text_encoders
    if freeze if freeze is not None else preset.freeze_text_encoders:
        freeze_text_encoders(model)
    processor = MistProcessor.from_mist_config(
        model.config, tokenizer, clip_model_name=script_args.clip_model, clip_pretrained=script_args.clip_pretrained
    )
    question_splits = add_question_clip_embeddings(DatasetDict({"train": train_questions, **evaluated}), processor)

    store = VideoFeatureStore(load_features(features_source, script_args.features_split))
    train_dataset = MistQuestionDataset(question_splits["train"], store, vocabulary, split=script_args.train_split)
    eval_datasets = {
        name: MistQuestionDataset(question_splits[name], store, vocabulary, keep_unlabeled=True, split=name)
        for name in evaluated
    }
    reports = [train_dataset.report] + [dataset.report for dataset in eval_datasets.values()]
    for report in reports:
        logger.warning("%s", report.summary())
    if len(train_dataset) == 0:
        raise ValueError(f"no usable training questions: {train_dataset.report.summary()}")

    results: dict[str, dict] = {}
    card_fields = dict(
        model_name=Path(training_args.output_dir).name,
        dataset=dataset,
        features=features_source,
        preset=preset.name,
        task=task,
        text_encoder=text_encoder,
        config=model.config,
        training_arguments=training_args,
        data_reports=[report.as_dict() for report in reports],
        results=results,
    )
    trainer = make_trainer(
        model,
        processor,
        training_args,
        train_dataset,
        eval_datasets.get(script_args.eval_split),
        model_card=lambda output_dir: write_model_card(output_dir, **card_fields),
    )

    checkpoint = training_args.resume_from_checkpoint
    if checkpoint == "last":
        checkpoint = get_last_checkpoint(training_args.output_dir)
    started = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=checkpoint)
    card_fields["train_runtime"] = time.perf_counter() - started
    trainer.save_metrics("train", train_output.metrics)

    for name, eval_dataset in eval_datasets.items():
        prefix = "eval" if name == script_args.eval_split else name
        trainer.compute_metrics = build_compute_metrics(
            eval_dataset.column("question_type"), None if multiple_choice else OPEN_ENDED_TOP_K
        )
        metrics = trainer.evaluate(eval_dataset, metric_key_prefix=prefix)
        trainer.save_metrics(prefix, metrics)
        results[name] = metrics

    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        write_model_card(training_args.output_dir, **card_fields)
        with open(Path(training_args.output_dir) / "data_report.json", "w") as handle:
            json.dump(card_fields["data_reports"], handle, indent=2)
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="mist train")
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        script_args, training_args, preset = parse_with_preset(
            argv, TrainScriptArguments, default_preset, prog="mist train", description=__doc__.split("\n\n")[0]
        )
        if not any(arg.split("=")[0] in ("--output_dir", "--output-dir") for arg in argv):
            raise ValueError("--output-dir is required")
        results = train(script_args, training_args, preset)
    except (ValueError, StrictDataclassError) as error:
        print(f"mist train: {error}", file=sys.stderr)
        return 2
    if training_args.process_index == 0:
        print(json.dumps({split: _printable(metrics) for split, metrics in results.items()}, indent=2))
    return 0


def _printable(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float, str))}


if __name__ == "__main__":
    sys.exit(main())
