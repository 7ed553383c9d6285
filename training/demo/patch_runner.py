"""`mist demo --task patches`: MIST and its twins on the patch task, trained the same way, side by side.

1. generates the patch task (`training.demo.patch_task`) and saves it under OUTPUT_DIR/data;
2. trains MIST (preset `demo`, frozen MiniLM encoders) and each twin (`patch_twins`) with the Trainer, the
   same data, seed, steps and learning rate;
3. prints test accuracy per question kind and, for the models that select, how often the top kept segment
   is the asked object's segment and how often the cell that decides the answer is kept in its frames;
   writes everything to OUTPUT_DIR/patch_results.json.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from configuration.presets import DEMO, minilm_path
from modeling_mist import MistProcessor

from ..data import MistQuestionDataset, VideoFeatureStore
from ..factory import build_model, freeze_text_encoders, make_trainer
from ..model_config import build_model_config_kwargs, parse_config_overrides
from .patch_task import ITEM_WORDS, QUADRANT_WORDS, PatchTaskConfig, PatchVideoQA, patch_answer_vocabulary
from .patch_twins import TWINS, EvidenceDataset, TwinCollator, install_oracle, twin_config_overrides
from .runner import ProgressLine, format_table, quiet_libraries

# What MIST trains with on the patch task unless `preset_selection` (docs/selection.md, "What learns it"): one kept
# segment (64 of the video's 512 patch tokens), every cell of each of its frames ordered by the patch selector's
# score, and relaxed Gumbel top-k draws annealed from soft (tau 16) to the exact top-k (tau 0.5) over the first 200
# training forwards; on top of the `demo` preset, under the run's own `config_overrides`. Keeping 4 cells instead
# of the grid's 16 learns "where" and never "beside" (the item's cell is the one the selector cannot score alone).
PATCH_TASK_SELECTION = (
    f"num_selected_segments=1,num_selected_patches={DEMO.model['grid_size'] ** 2},train_selection=gumbel_topk,"
    "gumbel_temperature=16,gumbel_temperature_end=0.5,gumbel_annealing_steps=200"
)
# What every model of the patch task trains with on top of the `demo` preset's training arguments, under the
# run's own `training_overrides`: half the preset's learning rate, held after the preset's warm-up instead of the
# cosine decay. With the preset's 2e-3 and cosine, MIST left the chance plateau on 3 of 7 runs; with these, on
# every seed tried (docs/selection.md, "Making the escape reliable" and "Result").
PATCH_TASK_TRAINING = {"learning_rate": 1e-3, "lr_scheduler_type": "constant_with_warmup"}


@dataclass
class PatchDemoOptions:
    """What `mist demo --task patches` varies."""

    output_dir: str = "outputs/demo_patches"
    scale: float = 1.0  # videos per split times this (PatchTaskConfig.videos_per_split)
    epochs: float = 12.0  # 1,128 steps at scale 1; at 6, most runs learn only one of the two question kinds
    seed: int = 0
    config_overrides: str | None = None  # MistConfig overrides of every model, on top of the selection settings
    preset_selection: bool = False  # train with the `demo` preset's selection as it is, not PATCH_TASK_SELECTION
    training_overrides: str | None = None  # on top of PATCH_TASK_TRAINING, e.g. "learning_rate=2e-3"
    task_overrides: str | None = None  # PatchTaskConfig overrides, e.g. "question_kinds=['beside']"
    twins: tuple[str, ...] = TWINS  # which models to train, MIST first
    # Train the answer encoder too (the question encoder stays frozen), at the run's learning rate: the preset's
    # 2e-3 takes the pretrained MiniLM apart (docs/selection.md), so lower it with --training-overrides.
    train_answer_encoder: bool = False
    curve_points: int = 8  # test accuracy this many times during training (accuracy against examples seen); 0: none


def patch_task_config(args: PatchDemoOptions) -> PatchTaskConfig:
    overrides = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in parse_config_overrides(args.task_overrides).items()
    }
    return PatchTaskConfig(**{"seed": args.seed, "scale": args.scale, **overrides})


def model_overrides(args: PatchDemoOptions) -> str | None:
    """The MistConfig overrides of every model of the run: the selection settings, then the run's own."""
    selection = None if args.preset_selection else PATCH_TASK_SELECTION
    return ",".join(part for part in (selection, args.config_overrides) if part) or None


def training_arguments(args: PatchDemoOptions) -> dict:
    """The TrainingArguments of every model of the run: the `demo` preset's, the patch task's, the run's own."""
    return {
        **DEMO.training,
        **PATCH_TASK_TRAINING,
        "num_train_epochs": args.epochs,
        "seed": args.seed,
        "disable_tqdm": True,
        "logging_steps": 50,
        "report_to": "none",
        **({"eval_strategy": "steps", "eval_steps": 1 / args.curve_points} if args.curve_points > 0 else {}),
        **parse_config_overrides(args.training_overrides),
    }


def train_twin(twin: str, questions, store, vocabulary, args: PatchDemoOptions, report) -> dict:
    """Train one model of the comparison; returns its test metrics and, when it selects, its evidence hits."""
    text_encoder = str(minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(text_encoder)
    torch.manual_seed(args.seed)
    run_overrides = model_overrides(args)
    num_segments = build_model_config_kwargs(DEMO, run_overrides)["num_segments"]
    overrides = ",".join(p for p in (run_overrides, twin_config_overrides(twin, num_segments)) if p) or None
    model = build_model(build_model_config_kwargs(DEMO, overrides), text_encoder, tokenizer, vocabulary)
    freeze_text_encoders(model)
    if args.train_answer_encoder:
        model.answer_encoder.requires_grad_(True)
    if twin == "oracle":
        install_oracle(model)
    processor = MistProcessor.from_mist_config(model.config, tokenizer, clip_pretrained=None)
    training_args = TrainingArguments(output_dir=str(Path(args.output_dir) / twin), **training_arguments(args))
    train_dataset = MistQuestionDataset(questions["train"], store, vocabulary, split="train")
    test_dataset = MistQuestionDataset(questions["test"], store, vocabulary, keep_unlabeled=True, split="test")
    if twin == "oracle":
        train_dataset, test_dataset = EvidenceDataset(train_dataset), EvidenceDataset(test_dataset)
    trainer = make_trainer(
        model, processor, training_args, train_dataset, test_dataset, zero_video=twin == "question_only"
    )
    trainer.data_collator = TwinCollator(trainer.data_collator, twin)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ProgressLine(twin, report))
    selection_curve = SelectionCurve(test_dataset, trainer.data_collator) if twin in ("mist", "oracle") else None
    if selection_curve is not None and args.curve_points > 0:
        trainer.add_callback(selection_curve)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    metrics = trainer.evaluate(test_dataset, metric_key_prefix="test")
    result = {
        "twin": twin,
        "test": {key: value for key, value in metrics.items() if isinstance(value, (int, float))},
        "seconds": seconds,
        "steps": trainer.state.global_step,
        "config_overrides": overrides,
        # test accuracy against training examples seen, from the evaluations during training
        "curve": [
            (entry["step"] * training_args.per_device_train_batch_size, entry["eval_accuracy"])
            for entry in trainer.state.log_history
            if "eval_accuracy" in entry
        ],
        "selection_curve": selection_curve.points if selection_curve is not None else [],
    }
    if twin in ("mist", "oracle"):
        result["selection"] = patch_evidence_hits(model, test_dataset, trainer.data_collator)
    return result


class SelectionCurve(TrainerCallback):
    """At every evaluation during training, the evidence hits of the model as it is (to see when selection is
    learned): `points` holds (training examples seen, hits per layer)."""

    def __init__(self, dataset, collator):
        self.dataset, self.collator, self.points = dataset, collator, []

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        examples = state.global_step * args.per_device_train_batch_size
        if not self.points or self.points[-1][0] != examples:  # the final evaluation repeats the last one
            self.points.append((examples, patch_evidence_hits(model, self.dataset, self.collator)))
        model.train()


@torch.no_grad()
def patch_evidence_hits(model, dataset, collator, batch_size: int = 128) -> list[dict]:
    """Per ISTA layer: the share of test questions whose top kept segment is the evidence segment, and the
    share of the evidence segment's kept frames (when it is kept) in which the answer's cell is kept."""
    model.eval()
    segments = [row[0] for row in dataset.column("evidence_segments")]
    answer_cells = dataset.column("answer_cell")
    top_hits, cell_hits, cell_frames, offset = None, None, None, 0
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collator):
        batch.pop("labels", None)
        outputs = model(**batch)
        num_layers = len(outputs.segment_indices)
        if top_hits is None:
            top_hits, cell_hits, cell_frames = [0] * num_layers, [0] * num_layers, [0] * num_layers
        for layer in range(num_layers):
            kept_segments = outputs.segment_indices[layer]  # [batch, k]
            kept_patches = outputs.patch_indices[layer]  # [batch, k, frames_per_segment, j]
            evidence = torch.tensor(segments[offset : offset + len(kept_segments)])  # [batch]
            cells = torch.tensor(answer_cells[offset : offset + len(kept_segments)])  # [batch]
            top_hits[layer] += int((kept_segments[:, 0] == evidence).sum())
            at_evidence = kept_segments == evidence[:, None]  # [batch, k]
            cell_kept = (kept_patches == cells[:, None, None, None]).any(dim=-1)  # [batch, k, frames]
            cell_hits[layer] += int((cell_kept & at_evidence[..., None]).sum())
            cell_frames[layer] += int(at_evidence.sum()) * kept_patches.shape[2]
        offset += len(batch["question_clip_embeds"])
    return [
        {
            "layer": layer + 1,
            "top_segment_is_evidence": top_hits[layer] / max(len(dataset), 1),
            "answer_cell_kept_in_its_frames": cell_hits[layer] / max(cell_frames[layer], 1),
        }
        for layer in range(len(top_hits))
    ]


TWIN_LABELS = {
    "mist": "MIST",
    "question_only": "question only (features zeroed)",
    "summaries_only": "summaries only (patch features zeroed)",
    "all_patches": "all patches of all frames (no selection)",
    "oracle": "oracle selection (evidence segment and cells on top)",
}


def twins_table(results: list[dict], kinds: tuple[str, ...]) -> str:
    """The side-by-side table: accuracy overall and per kind, evidence hits per layer, training time."""
    header = (
        "model",
        "test accuracy",
        *(f"{kind}" for kind in kinds),
        "top segment = evidence",
        "answer cell kept",
        "training",
    )
    rows = []
    for result in results:
        test, hits = result["test"], result.get("selection")
        rows.append(
            (
                TWIN_LABELS[result["twin"]],
                _percent(test["test_accuracy"]),
                *(_percent(test[f"test_accuracy_{kind}"]) if f"test_accuracy_{kind}" in test else "" for kind in kinds),
                " / ".join(_percent(layer["top_segment_is_evidence"]) for layer in hits) if hits else "",
                " / ".join(_percent(layer["answer_cell_kept_in_its_frames"]) for layer in hits) if hits else "",
                f"{result['seconds']:.0f}s",
            )
        )
    return format_table(rows, header)


def run_patch_demo(args: PatchDemoOptions, report: Callable[[str], None] = print) -> dict:
    """Generate the patch task, train MIST and its twins, print the table; returns the summary also written to
    OUTPUT_DIR/patch_results.json."""
    unknown = [twin for twin in args.twins if twin not in TWINS]
    if unknown:
        raise ValueError(f"unknown twins {unknown}; expected some of {', '.join(TWINS)}")
    quiet_libraries()
    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    task_config = patch_task_config(args)
    questions, features = PatchVideoQA(task_config).generate()
    questions.save_to_disk(str(output_dir / "data" / "questions"))
    features.save_to_disk(str(output_dir / "data" / "features"))
    store = VideoFeatureStore(features)
    vocabulary = patch_answer_vocabulary(task_config)
    report(
        f"patch task: {len(questions['train'])} training / {len(questions['test'])} test questions "
        f"({', '.join(task_config.question_kinds)}), {len(vocabulary)} answers ({time.perf_counter() - started:.0f}s)"
    )
    report(f"MIST overrides of the demo preset: {model_overrides(args) or 'none'}")
    results = []
    for twin in args.twins:
        results.append(train_twin(twin, questions, store, vocabulary, args, report))
        with open(output_dir / "patch_results.json", "w") as handle:  # after each model: a long run keeps its rows
            json.dump({"options": vars(args), "results": results}, handle, indent=2, default=list)
    report("")
    report(twins_table(results, task_config.question_kinds))
    report(
        f"chance (a uniform guess among the answers of the question's kind): {_percent(chance_accuracy(task_config))}"
    )
    if any(result["curve"] for result in results):
        plot_curves(results, output_dir / "curves.png", chance=chance_accuracy(task_config))
        report(f"accuracy against training examples: {output_dir / 'curves.png'}")
    report(f"\ntotal {time.perf_counter() - started:.0f}s; results in {output_dir / 'patch_results.json'}")
    return {"options": vars(args), "results": results}


def chance_accuracy(config: PatchTaskConfig) -> float:
    """Accuracy of a uniform guess among the answers of each question's kind, the kinds asked equally often."""
    sizes = {"beside": len(ITEM_WORDS), "where": len(QUADRANT_WORDS)}
    return sum(1 / sizes[kind] for kind in config.question_kinds) / len(config.question_kinds)


def plot_curves(results: list[dict], png: Path, chance: float) -> None:
    """Test accuracy against training examples seen, one line per trained model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 4.5))
    for result in results:
        if result["curve"]:
            examples, accuracy = zip(*result["curve"])
            label = result.get("label", TWIN_LABELS[result["twin"]])  # a study's own name for the run, when it has one
            axes.plot(examples, [100 * value for value in accuracy], marker="o", label=label)
    axes.axhline(100 * chance, color="grey", linestyle=":", label="chance (a uniform guess within the kind)")
    axes.set_xlabel("training examples seen")
    axes.set_ylabel("test accuracy (%)")
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the axes: it hides no point
    figure.tight_layout()
    figure.savefig(png, dpi=110)
    plt.close(figure)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"
