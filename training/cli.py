"""The `mist` command: one entry point, one module per subcommand.

Each subcommand module exposes `main(argv: list[str]) -> int` and parses its own arguments, so
`mist train` can hand transformers' own `TrainingArguments` flags to `HfArgumentParser`.
Modules are imported only when their subcommand runs, keeping `mist --help` fast.
"""

import importlib
import sys

SUBCOMMANDS = {
    "extract-features": ("processing.extract_features", "CLIP frame and patch features for a set of videos"),
    "prepare-dataset": ("processing.prepare_dataset", "convert AGQA / NExT-QA / STAR / Env-QA annotations"),
    "train": ("training.train", "train MIST with the transformers Trainer"),
    "evaluate": ("training.evaluate", "accuracy overall and per question type"),
    "predict": ("training.predict", "answer a question about one video"),
    "demo": ("training.demo", "offline synthetic long-form video QA: train, compare, explain"),
}


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: mist <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    lines += ["", "Run `mist <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"mist: unknown command {command!r}; expected one of {', '.join(SUBCOMMANDS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
