"""The README.md model card of a trained MIST folder: data, hyperparameters, results, usage."""

import json
from pathlib import Path

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


def _table(rows: list[tuple[str, object]], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {key} | {_format(value)} |" for key, value in rows]
    return "\n".join(lines)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _results_section(results: dict[str, dict]) -> str:
    if not results:
        return "No evaluation was run."
    blocks = []
    for split, metrics in results.items():
        rows = [(key, value) for key, value in metrics.items() if "accuracy" in key or key.endswith("loss")]
        blocks.append(f"**{split}**\n\n" + _table(rows, ("metric", "value")))
    return "\n\n".join(blocks)


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
) -> str:
    """Markdown with a Hub metadata header."""
    metadata = {
        "library_name": "transformers",
        "tags": ["mist", "video-question-answering", "long-form-video"],
        "license": "apache-2.0",
    }
    if not Path(dataset).exists():
        metadata["datasets"] = [dataset]
    header = "---\n" + "\n".join(f"{key}: {json.dumps(value)}" for key, value in metadata.items()) + "\n---\n"

    vocabulary = len(config.id2label) if task == "open-ended" and config.id2label else None
    data_rows = [("questions", dataset), ("video features", features), ("task", task)]
    if vocabulary:
        data_rows.append(("answer vocabulary", f"{vocabulary} answers (config.id2label)"))
    report_lines = [
        f"- {report['split']}: {report['kept']} of {report['total']} questions used; "
        f"{report['missing_features']} without video features, "
        f"{report['answer_not_in_vocabulary']} answers outside the vocabulary, "
        f"{report['answer_not_in_choices']} answers not among their choices"
        + (f" ({report['kept_without_label']} kept and scored as wrong)" if report["kept_without_label"] else "")
        for report in data_reports
    ]
    training_rows = [(name, getattr(training_arguments, name)) for name in RECORDED_TRAINING_ARGUMENTS]
    training_rows.append(("processes", getattr(training_arguments, "world_size", 1)))
    if train_runtime is not None:
        training_rows.append(("train runtime (s)", round(train_runtime, 1)))
    model_rows = [(name, getattr(config, name)) for name in RECORDED_MODEL_SIZES]
    model_rows.append(("text encoder", text_encoder or f"random {config.text_config.model_type}"))

    return f"""{header}
# {model_name}

MIST (Multi-modal Iterative Spatial-Temporal Transformer, CVPR 2023) for long-form video question
answering, trained with `mist train --preset {preset}`. The model reads CLIP frame and patch
features of {config.num_frames} frames per video, keeps {config.num_selected_segments} of
{config.num_segments} segments and {config.num_selected_patches} patches per kept frame in each of
{config.num_ista_layers} ISTA layers, and scores candidate answers with a second text encoder.

## Data

{_table(data_rows, ("", ""))}

{chr(10).join(report_lines)}

## Hyperparameters

Preset `{preset}`.

{_table(model_rows, ("model", "value"))}

{_table(training_rows, ("training", "value"))}

## Results

{_results_section(results)}

## Usage

```python
import modeling_mist  # registers MIST with the Auto classes (or pass trust_remote_code=True)
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{model_name}")
processor = AutoProcessor.from_pretrained("{model_name}")
```

or from the command line: `mist predict --model {model_name} --video clip.mp4 --question "..."`,
`mist evaluate --model {model_name} --dataset ... --features ... --split test`.
"""


def write_model_card(output_dir: str | Path, **fields) -> Path:
    path = Path(output_dir) / "README.md"
    path.write_text(render_model_card(**fields), encoding="utf-8")
    return path
