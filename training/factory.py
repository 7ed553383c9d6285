"""What every command builds: a MIST for a preset, its processor, collator and Trainer, or a trained one loaded back."""

import logging
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig, AutoModel, AutoProcessor, TrainingArguments

import modeling_mist  # noqa: F401  (registers MIST with the Auto classes)
from modeling_mist import MistConfig, MistForVideoQuestionAnswering, MistProcessor
from modeling_mist.clip_runtime_mist import parse_clip_pretrained

from .collator import MistDataCollator
from .data import MistQuestionDataset
from .errors import BrokenFileError, UsageError, check_local_or_hub, hub_failure
from .trainer import OPEN_ENDED_TOP_K, MistTrainer, build_compute_metrics, rank_candidates

logger = logging.getLogger(__name__)


def build_model(
    config_kwargs: dict,
    text_encoder: str | None,
    tokenizer,
    answer_vocabulary: list[str] | None,
    task: str = "open-ended",
) -> MistForVideoQuestionAnswering:
    """A fresh MIST of `config_kwargs` (a preset's, with its overrides: `build_model_config_kwargs`) for the
    task, its text encoders loaded from `text_encoder` when given.

    `task` is `"open-ended"` (then `answer_vocabulary` is the model's `id2label`) or `"multiple-choice"`
    (the config's `choice_template` says how each choice is written for the answer encoder).
    """
    kwargs = dict(config_kwargs)
    if text_encoder is not None:
        # Size the config from the pretrained encoder so no throwaway default-size encoder is built.
        kwargs["text_config"] = AutoConfig.from_pretrained(text_encoder).to_dict()
    else:
        kwargs.setdefault("text_config", {"model_type": "bert"})
        kwargs["text_config"] = {**kwargs["text_config"], "vocab_size": len(tokenizer)}
    kwargs["task"] = task
    config = MistConfig(**kwargs)  # validates the sizes
    if answer_vocabulary is not None:
        config.set_answer_vocabulary(answer_vocabulary)
    model = MistForVideoQuestionAnswering(config)
    if text_encoder is not None:
        model.load_text_encoders(text_encoder)  # reads the checkpoint once for both encoders
    return model


def freeze_text_encoders(model: MistForVideoQuestionAnswering) -> None:
    """Stop training the question and answer encoders (the Trainer optimises only trainable parameters)."""
    if model.mist.question_encoder is not None:  # NExT-QA-style models read no question tokens
        model.mist.question_encoder.requires_grad_(False)
    model.answer_encoder.requires_grad_(False)


def make_collator(processor: MistProcessor, config: MistConfig, zero_video: bool = False) -> MistDataCollator:
    """The collator of the model's task: the open-ended vocabulary, or each question's choices. Features stay
    in their stored dtype (float16) until the model casts them on its device."""
    return MistDataCollator(processor=processor, config=config, zero_video=zero_video, feature_dtype=None)


def make_trainer(
    model: MistForVideoQuestionAnswering,
    processor: MistProcessor,
    training_args: TrainingArguments,
    train_dataset: MistQuestionDataset | None,
    eval_dataset: MistQuestionDataset | None,
    zero_video: bool = False,
    model_card=None,
    top_k: int | None = None,
    with_scores: bool = False,
) -> MistTrainer:
    """A `MistTrainer` with the collator and metrics that fit the task.

    Evaluation keeps each question's `top_k` best candidates (`rank_candidates`; default: the top 10
    for open-ended answers, the paper's top-10 accuracy, the best one for multiple choice);
    `with_scores` keeps their probabilities too and leaves the metrics to the caller.
    """
    training_args.remove_unused_columns = False  # examples carry text that only the collator reads
    training_args.label_names = ["labels"]
    metric_top_k = None if model.config.multiple_choice else OPEN_ENDED_TOP_K
    compute_metrics = None
    if eval_dataset is not None and not with_scores:
        compute_metrics = build_compute_metrics(eval_dataset.column("question_type"), metric_top_k)
    return MistTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=make_collator(processor, model.config, zero_video=zero_video),
        processing_class=processor,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=rank_candidates(top_k or metric_top_k or 1, with_scores=with_scores),
        model_card=model_card,
    )


def load_trained(
    model_path: str, clip_pretrained: str | None = None, device: str | torch.device = "cpu"
) -> tuple[MistForVideoQuestionAnswering, MistProcessor]:
    """The model (eval mode, on `device`) and processor saved by `mist train`.

    `clip_pretrained` overrides the processor's CLIP weights (a tag, a file, or `"none"` for random).
    Raises `UsageError` for a device this machine lacks or a path that does not exist (or a Hub id that
    cannot be loaded), and `BrokenFileError` for a folder that is not a complete saved model; the messages
    name the device or path (a command adds its flag: `training.cli.arguments.load_trained_model`).
    """
    check_device(device)
    if check_local_or_hub(model_path) == "hub":
        try:
            model = AutoModel.from_pretrained(model_path)
            processor = AutoProcessor.from_pretrained(model_path)
        except Exception as error:
            raise hub_failure(model_path, "model", error) from error
    else:
        check_saved_model(Path(model_path).expanduser())
        try:
            model = AutoModel.from_pretrained(model_path)
            processor = AutoProcessor.from_pretrained(model_path)
        except StrictDataclassError as error:  # a hand-edited config.json: the validator's own reason, in one line
            reason = str(error.__cause__ or error).strip().splitlines()[0]
            raise BrokenFileError(
                f"{Path(model_path) / 'config.json'}: not a valid MIST config ({reason}); fix that value or save the "
                "model again"
            ) from error
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            raise BrokenFileError(
                f"{model_path}: the saved model cannot be loaded ({type(error).__name__}: {error})"
            ) from error
    model = model.to(device).eval()
    if clip_pretrained is not None:
        processor.video_processor.clip_pretrained = parse_clip_pretrained(clip_pretrained)
    return model, processor


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a `torch.device`; raises `UsageError` for a name torch does not know or a GPU this machine lacks."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise UsageError(f"{device}: not a device; expected cpu, cuda or cuda:N") from error
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(
                f"{device}: this machine has no usable CUDA GPU (torch.cuda.is_available() is False); "
                "pass --device cpu"
            )
        if parsed.index is not None and parsed.index >= count:
            raise UsageError(f"{device}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{device}: this machine has no usable Apple GPU (MPS); pass --device cpu")
    return parsed


def check_saved_model(path: Path) -> None:
    """Raise unless `path` is a folder with a config and weights (what `mist train` leaves)."""
    if not path.is_dir():
        raise UsageError(f"{path}: a file; expected the model folder that `mist train --output-dir` writes")
    checkpoints = sorted(
        (entry for entry in path.glob("checkpoint-*") if any(entry.glob("*.safetensors"))),
        key=lambda entry: int(entry.name.split("-")[-1]) if entry.name.split("-")[-1].isdigit() else -1,
    )
    hint = f"; its newest checkpoint with weights is {checkpoints[-1]}" if checkpoints else ""
    if not (path / "config.json").is_file():
        raise BrokenFileError(
            f"{path}: no config.json, so not a saved model (expected the folder that `mist train --output-dir` "
            f"writes){hint}"
        )
    if not any(path.glob("*.safetensors")) and not (path / "pytorch_model.bin").is_file():
        held = sorted(entry.name for entry in path.iterdir())
        raise BrokenFileError(
            f"{path}: no weights (model.safetensors), only {', '.join(held[:6])}: "
            f"was its training run killed before it saved the model?{hint}"
        )
    if not (path / "processor_config.json").is_file():
        raise BrokenFileError(
            f"{path}: no processor_config.json (the tokenizer, CLIP choice and answers saved beside the model); a "
            "checkpoint converted without a tokenizer: convert it again with --tokenizer NAME_OR_DIR"
        )
