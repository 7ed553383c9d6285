"""`mist train`: train MIST on a question dataset and its video features with the transformers Trainer.

    mist train --dataset DATA --features FEATURES --output-dir OUT [--preset agqa|nextqa|star|demo|tiny]
               [--text-encoder NAME_OR_PATH] [--config-overrides "hidden_size=256,..."]
               [any TrainingArguments flag: --max_steps, --learning_rate, --per_device_train_batch_size, ...]

Open-ended or multiple choice follows from the data (a `choices` column). The preset defaults to
`nextqa` for multiple choice and `agqa` otherwise; sizes the features carry (frames, patches, CLIP
width) are read from them. OUT receives a complete `save_pretrained` model and processor, a
README.md model card, and the metrics. An OUT that holds anything is refused unless
`--resume-from-checkpoint last|CHECKPOINT` or `--overwrite-output-dir` is given. Run under `torchrun`
or `accelerate launch` (`-m training.cli train ...`) to train on several processes.
Exit status: 0 trained, 1 a file could not be read, 2 unusable arguments.
"""

import argparse
import json
import logging
import sys

from training.cli.arguments import short_help, training_parser
from training.errors import ReportedErrors

PROG = "mist train"
DESCRIPTION = __doc__.split("\n\n")[0]


def take_debug_flag(argv: list[str]) -> tuple[list[str], bool]:
    """Remove a bare `--debug` (ours) and keep `--debug VALUE` (TrainingArguments' own debug option)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--debug", nargs="?", const=True, action="append", default=[])
    known, rest = parser.parse_known_args(argv)
    if True not in known.debug:
        return list(argv), False
    return rest + [arg for value in known.debug if value is not True for arg in ("--debug", value)], True


def help_wanted(argv: list[str]) -> str | None:
    """`help` or `help_all` when the command line asks for the short or the full option list."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--help-all", action="store_true")
    known, _ = parser.parse_known_args(argv)
    return "help_all" if known.help_all else "help" if known.help else None


def check_command_line(argv: list[str]) -> None:
    """Refuse, before torch is imported, an unknown option, a bad choice or number, or no `--output-dir`,
    `--dataset` or `--features`."""
    parser = training_parser(PROG, DESCRIPTION, usage=f"{PROG} --dataset DATA --features FEATURES --output-dir OUT "
                             "[options]", argument_default=argparse.SUPPRESS)  # fmt: skip
    given, unknown = parser.parse_known_args(argv)  # exits 2 on a bad choice or number, as HfArgumentParser does
    if unknown:
        raise ValueError(f"Some specified arguments are not used by the HfArgumentParser: {unknown}")
    for name in ("output_dir", "dataset", "features"):
        if name not in vars(given):
            raise ValueError(f"--{name.replace('_', '-')} is required")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    wanted = help_wanted(argv)
    if wanted == "help_all":
        training_parser(PROG, DESCRIPTION).print_help()
        return 0
    if wanted == "help":
        print(short_help(PROG, DESCRIPTION))
        return 0
    argv, debug = take_debug_flag(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    with ReportedErrors(PROG, debug, usage=(ValueError,)) as outcome:
        check_command_line(argv)
    if outcome.status is not None:
        return outcome.status
    from huggingface_hub.errors import StrictDataclassError

    from training.cli.arguments import parse_with_preset
    from training.train import TrainOptions, default_preset, train

    with ReportedErrors(PROG, debug, usage=(ValueError, StrictDataclassError)) as outcome:
        options, training_args, preset = parse_with_preset(
            argv, TrainOptions, default_preset, prog=PROG, description=DESCRIPTION
        )
        results = train(options, training_args, preset)
    if outcome.status is not None:
        return outcome.status
    if training_args.process_index == 0:
        print(json.dumps({split: _printable(metrics) for split, metrics in results.items()}, indent=2))
    return 0


def _printable(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float, str))}
