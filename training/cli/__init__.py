"""The `mist` command line: one entry point, one module per sub-command under `training.cli`.

Everything about the command line lives in this package: sub-commands, argument parsing, printing
and exit codes (0 success, 1 a failure while working, 2 a usage error). The work itself is done by
library modules (`training.*`, `processing.*`) that no command owns, and no command module imports
another (they share only `training.cli.arguments`: the parser and the `TrainingArguments` defaults).
Each module exposes `main(argv) -> int` and is imported only when its sub-command runs, keeping
`mist --help` fast. `python -m training.cli ...` is the same command (for `torchrun` and
`accelerate launch`).
"""

import importlib
import sys

SUBCOMMANDS = {
    "extract-features": ("extract_features", "CLIP frame and patch features for a set of videos"),
    "prepare-dataset": ("prepare_dataset", "convert video QA questions (files, a Hub dataset) to question files"),
    "train": ("train", "train MIST with the transformers Trainer"),
    "evaluate": ("evaluate", "accuracy overall and per question type"),
    "predict": ("predict", "answer a question about one video"),
    "demo": ("demo", "offline synthetic long-form video QA: train, compare, explain"),
    "app": ("app", "web page (Gradio) to ask questions about a video and see what MIST looked at"),
}


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: mist <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    lines += ["", "Run `mist <command> --help` for a command's options; `mist --version` for the version."]
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return f"mist {package_version('mist-videoqa')}"
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "mist (not installed)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(version())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"mist: unknown command {command!r}; expected one of {', '.join(SUBCOMMANDS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{SUBCOMMANDS[command][0]}")
    return int(module.main(rest) or 0)
