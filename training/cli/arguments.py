"""The command line of every `mist` command: its parser, and how `mist train` turns a preset and a
command line into `TrainingArguments`.

The preset supplies defaults; any `TrainingArguments` field given on the command line under
transformers' own name (`--learning_rate`, `--max_steps`, `--per_device_train_batch_size`, ...)
wins. Model sizes are overridden with `--config-overrides "hidden_size=256,dropout=0.1"`
(`training.model_config` turns them into `MistConfig` keyword arguments).

Every `mist` command spells its options `--a-b` in its help and accepts `--a_b` as well
(`MistArgumentParser`; `HfArgumentParser` does the same for `mist train`).

`--help` and usage errors answer without importing torch: what the help of `train`, `extract-features`
and `demo` shows from modules that import torch (every `TrainingArguments` and `TrainOptions` option, the
video processor's CLIP defaults, the demo's defaults) is stored in `help_data.json`, made from the live
classes for one transformers version (`make help-data`); with another version it is built live.
"""

import argparse
import dataclasses
import enum
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # transformers, torch and the presets load only when a command parses training arguments
    from transformers import TrainingArguments

    from configuration.presets import Preset

logger = logging.getLogger(__name__)


class MistArgumentParser(argparse.ArgumentParser):
    """`argparse` with the conventions of every `mist` command: options are shown as `--a-b` and also
    accepted as `--a_b`, and `--debug` shows the full traceback of an error instead of one line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug", action="store_true", help="on an error, show the full traceback instead of a one-line message"
        )

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args([self._hyphenated(arg) for arg in args], namespace)

    def _hyphenated(self, arg: str) -> str:
        """`--output_dir=x` -> `--output-dir=x` when only the hyphenated spelling is an option."""
        if not arg.startswith("--") or "_" not in arg:
            return arg
        name, sep, value = arg.partition("=")
        spelled = name.replace("_", "-")
        if name not in self._option_string_actions and spelled in self._option_string_actions:
            return spelled + sep + value
        return arg


def available_cpu_workers() -> int:
    """Data-loader workers this process can run beside itself: its CPU cores minus one (0 on one core)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(cores - 1, 0)


def default_device() -> str:
    """`cuda` when this machine has one, else `cpu` (the `--device` default of predict and evaluate)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_trained_model(model: str, clip_pretrained: str | None, device: str):
    """`training.factory.load_trained`, its errors naming the flag that gave the value (`--device`, `--model`)."""
    from training.errors import named_by
    from training.factory import check_device, load_trained

    with named_by("--device"):
        check_device(device)
    with named_by("--model"):
        return load_trained(model, clip_pretrained, device)


def given_flags(argv: Sequence[str]) -> set[str]:
    """Field names of the `TrainOptions` and `TrainingArguments` options on a command line (`--max-steps=4` ->
    `max_steps`), read by argparse with nothing checked (the real parse reports what is wrong)."""
    data = help_data()
    parser = argparse.ArgumentParser(
        add_help=False, allow_abbrev=False, argument_default=argparse.SUPPRESS, exit_on_error=False
    )
    add_stored_options(parser, data["train_options"] + data["training_arguments"], checked=False)
    try:
        known, _ = parser.parse_known_args(list(argv))
    except argparse.ArgumentError:  # an option without its value: the real parse says so
        return set()
    return set(vars(known))


def preset_name_from(argv: Sequence[str]) -> str | None:
    """The `--preset` value of a command line, without parsing the rest."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--preset", default=None)
    known, _ = parser.parse_known_args(list(argv))
    return known.preset


def parse_with_preset(
    argv: Sequence[str],
    script_arguments: type,
    choose_preset: Callable[[object], str] | None = None,
    **parser_kwargs,
) -> "tuple[object, TrainingArguments, Preset]":
    """Parse `argv` into (`script_arguments` instance, `TrainingArguments`, preset).

    `script_arguments` is a dataclass with a `preset` field. When the command line names no preset,
    `choose_preset(script_args)` picks one (for example from the data); the command line is then
    parsed again so that the chosen preset's training defaults apply. `parser_kwargs` (`prog`,
    `description`) go to the argument parser.
    """
    from transformers import HfArgumentParser, TrainingArguments

    from configuration.presets import PRESETS, get_preset

    argv = list(argv)
    name = preset_name_from(argv)
    if name is None:
        if choose_preset is None:
            raise ValueError(f"--preset is required; expected one of {', '.join(PRESETS)}")
        first_parser = HfArgumentParser((script_arguments, TrainingArguments), **parser_kwargs)
        first_pass, _ = first_parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
        name = choose_preset(first_pass)
    preset = get_preset(name)
    parser = HfArgumentParser((script_arguments, TrainingArguments), **parser_kwargs)
    parser.set_defaults(**fit_training_defaults(preset, argv), preset=preset.name)
    script_args, training_args = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    return script_args, training_args, preset


# Checkpoints kept when neither the preset nor the command line says (each holds the weights and optimizer state).
DEFAULT_SAVE_TOTAL_LIMIT = 3


def fit_training_defaults(preset: "Preset", argv: Sequence[str]) -> dict:
    """The preset's `TrainingArguments` defaults, fitted to this command line and machine.

    * `load_best_model_at_end` needs a checkpoint at every evaluation: when the command line changes
      the save or evaluation strategy so that they differ (`--save-strategy no`), the preset's
      `load_best_model_at_end` is turned off rather than refused (unless the flag itself is given).
    * `dataloader_num_workers` is capped at the CPU cores this process may use, minus one.
    * `--num-train-epochs` given without `--max-steps` turns off the preset's `max_steps` (which would win).
    * Checkpoints are capped at `DEFAULT_SAVE_TOTAL_LIMIT` unless the preset or `--save-total-limit` says.
    """
    defaults = dict(preset.training)
    given = given_flags(argv)
    if "num_train_epochs" in given and "max_steps" not in given and defaults.get("max_steps", -1) > 0:
        logger.info("--num-train-epochs given: the %s preset's max_steps=%d is off", preset.name, defaults["max_steps"])
        defaults["max_steps"] = -1
    if "save_total_limit" not in given and defaults.get("save_total_limit") is None:
        defaults["save_total_limit"] = DEFAULT_SAVE_TOTAL_LIMIT
    if defaults.get("load_best_model_at_end") and "load_best_model_at_end" not in given:
        strategies = _strategies_from(argv, defaults)
        if strategies["save_strategy"] != "best" and (
            strategies["save_strategy"] != strategies["eval_strategy"]
            or (strategies["save_strategy"] == "steps" and strategies["save_steps"] % strategies["eval_steps"])
        ):
            defaults["load_best_model_at_end"] = False
            logger.info(
                "save_strategy=%s, eval_strategy=%s: the %s preset's load_best_model_at_end is off "
                "(loading the best model needs a checkpoint at every evaluation)",
                strategies["save_strategy"],
                strategies["eval_strategy"],
                preset.name,
            )
    workers = defaults.get("dataloader_num_workers", 0)
    if "dataloader_num_workers" not in given and workers > available_cpu_workers():
        defaults["dataloader_num_workers"] = available_cpu_workers()
        logger.info(
            "dataloader_num_workers: %d (the %s preset asks for %d; this process may use %d CPU cores)",
            defaults["dataloader_num_workers"],
            preset.name,
            workers,
            available_cpu_workers() + 1,
        )
    return defaults


def _strategies_from(argv: Sequence[str], defaults: dict) -> dict:
    """Save/eval strategies and steps of a command line, the preset's where not given."""
    parser = argparse.ArgumentParser(add_help=False)
    for name in ("save_strategy", "eval_strategy"):
        parser.add_argument(f"--{name}", f"--{name.replace('_', '-')}", default=defaults.get(name, "no"))
    for name in ("save_steps", "eval_steps"):
        parser.add_argument(f"--{name}", f"--{name.replace('_', '-')}", type=float, default=defaults.get(name))
    known, _ = parser.parse_known_args(list(argv))
    values = {name: str(getattr(known, name)).lower() for name in ("save_strategy", "eval_strategy")}
    save_steps = known.save_steps or 500
    values.update(save_steps=save_steps, eval_steps=known.eval_steps or save_steps)
    return values


# `TrainingArguments` that `mist train --help` lists; `--help-all` lists every one.
COMMON_TRAINING_ARGUMENTS = {
    "output_dir": "where the model, its card, metrics and checkpoints go (required); a folder that holds anything "
    "is refused unless --resume-from-checkpoint or --overwrite-output-dir is given",
    "resume_from_checkpoint": "continue an interrupted run: 'last' (the newest complete checkpoint-* in "
    "--output-dir) or a checkpoint folder; the first run must save checkpoints (--save-strategy steps or epoch)",
    "num_train_epochs": "training epochs",
    "max_steps": "training steps; overrides --num-train-epochs when positive",
    "learning_rate": "peak learning rate",
    "per_device_train_batch_size": "training questions per batch and process",
    "per_device_eval_batch_size": "evaluation questions per batch and process",
    "gradient_accumulation_steps": "batches per optimizer step",
    "eval_strategy": "when to evaluate on --eval-split: no, steps or epoch",
    "save_strategy": "when to write a checkpoint-* folder (what --resume-from-checkpoint needs): "
    "no, steps, epoch or best",
    "save_steps": "steps between checkpoints with --save-strategy steps",
    "save_total_limit": f"checkpoints kept, older ones are deleted (default: the preset's, else "
    f"{DEFAULT_SAVE_TOTAL_LIMIT})",
    "logging_steps": "steps between loss lines",
    "seed": "seed of the model initialisation, data order and selection noise",
    "bf16": "train in bfloat16 mixed precision",
    "fp16": "train in float16 mixed precision",
    "dataloader_num_workers": "data-loader worker processes (default: the preset's, at most the CPU cores - 1)",
    "report_to": "experiment trackers: none, tensorboard, wandb, ...",
    "push_to_hub": "upload the finished model folder (weights, processor, model card) to --hub-model-id",
    "hub_model_id": "Hub repository to push to, e.g. user/mist-agqa",
}


def short_help(prog: str, description: str) -> str:
    """`mist train --help`: the command's own options, the most used `TrainingArguments` (`--a-b` spelled) and
    each preset's training defaults."""
    data = help_data()
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        usage=f"{prog} --dataset DATA --features FEATURES --output-dir OUT [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Every TrainingArguments flag is accepted (as --a_b or --a-b); `mist train --help-all` lists "
        "them all. Training defaults come from the preset; a flag given here wins.\n\n"
        + preset_defaults_text({spec["dest"]: spec["default"] for spec in reversed(data["training_arguments"])}),
        add_help=False,
    )
    parser.add_argument("-h", "--help", action="store_true", help="this list; --help-all: every option")
    parser.add_argument(
        "--debug", action="store_true", help="on an error, show the full traceback instead of a one-line message"
    )
    own = parser.add_argument_group("MIST options")
    for spec in data["train_options"]:
        _add_field(own, spec, spec["help"] or "")
    common = parser.add_argument_group("most used TrainingArguments (defaults from the preset)")
    options = {spec["dest"]: spec for spec in data["training_arguments"] if spec.get("action") != "store_false"}
    for name, help_text in COMMON_TRAINING_ARGUMENTS.items():
        _add_field(common, options[name], help_text, False)
    return parser.format_help()


def training_parser(prog: str, description: str, checked: bool = True, **parser_kwargs) -> argparse.ArgumentParser:
    """`HfArgumentParser((TrainOptions, TrainingArguments))` rebuilt from `help_data()` without importing torch:
    the same options, choices and help (`checked=False`: every value read as text). For `--help-all`, and for
    refusing an unknown option or a bad choice before the real parse."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter, **parser_kwargs
    )
    data = help_data()
    add_stored_options(parser, data["train_options"] + data["training_arguments"], checked)
    return parser


def preset_defaults_text(transformers_defaults: dict) -> str:
    """One line per preset: the training defaults a flag would change (length, learning rate, batch, checkpoints),
    the preset's or else `transformers_defaults` (`TrainingArguments`' own)."""
    from configuration.presets import PRESETS

    lines = ["training defaults of the presets:"]
    for preset in PRESETS.values():
        training = {**transformers_defaults, **preset.training}
        steps = training["max_steps"]
        length = f"{steps} steps" if steps > 0 else f"{training['num_train_epochs']:g} epochs"
        saving = str(training["save_strategy"]).removeprefix("SaveStrategy.").lower()
        checkpoints = "no checkpoints" if saving == "no" else f"checkpoints every {saving}"
        if saving != "no":
            checkpoints += f" (keeps {training['save_total_limit'] or DEFAULT_SAVE_TOTAL_LIMIT})"
        lines.append(
            f"  {preset.name}: {length}, learning rate {training['learning_rate']:g}, batch "
            f"{training['per_device_train_batch_size']}, evaluation {training['eval_strategy']}, {checkpoints}"
        )
    return "\n".join(lines)


def _add_field(group, spec: dict, help_text: str, show_default: bool = True) -> None:
    """One stored option in the short help: `--a-b` only, a flag for booleans, the default where it tells."""
    flag = f"--{spec['dest'].replace('_', '-')}"
    if spec["type"] == "bool":
        group.add_argument(flag, action="store_true", help=help_text)
        return
    default = spec["default"]
    if show_default and default not in (None, "", False) and "default" not in help_text:
        help_text = f"{help_text} (default: {default})"
    group.add_argument(flag, metavar={"int": "N", "float": "X"}.get(spec["type"], "VALUE"), help=help_text)


# ----- what the help shows from modules that import torch, stored ---------------------------------------

HELP_DATA_FILE = Path(__file__).with_name("help_data.json")
OPTIONS = ("train_options", "training_arguments")  # the stored option lists
_STORED_TYPES = {"int": int, "float": float}  # the rest is read as text here; the real parse converts it


def help_data() -> dict:
    """The stored help data when it was made for the installed transformers version; else the copy built live
    for this version on an earlier run (in the user's cache), else built live now and cached for the next run."""
    version = installed_version("transformers")
    for path in (HELP_DATA_FILE, cached_help_data_file(version)):
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if stored.get("transformers") == version:
            return stored
    live = live_help_data()
    try:
        from processing.file_utils import write_text_atomically

        cache = cached_help_data_file(version)
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(cache, json.dumps(live, ensure_ascii=False))
    except OSError:  # a read-only home: built live again next time, nothing else changes
        pass
    return live


def cached_help_data_file(transformers_version: str) -> Path:
    """Where the help data built live for another transformers version than the stored one is kept, with the
    project's version in the name (`$XDG_CACHE_HOME/mist`, else `~/.cache/mist`)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    try:
        project = installed_version("mist-videoqa")
    except PackageNotFoundError:  # run from a source tree that is not installed
        project = "source"
    return Path(cache_home) / "mist" / f"help_data-transformers-{transformers_version}-mist-{project}.json"


def live_help_data() -> dict:
    """What `help_data.json` stores, read from the live classes (imports torch and transformers)."""
    from transformers import HfArgumentParser, TrainingArguments

    from modeling_mist import MistVideoProcessor
    from modeling_mist.clip_runtime_mist import CLIP_DTYPES
    from training.demo import DemoOptions, PatchDemoOptions
    from training.demo.patch_twins import TWINS
    from training.train import TrainOptions

    def options(dataclass_type) -> list[dict]:
        actions = HfArgumentParser((dataclass_type,))._actions
        return [_stored_option(action) for action in actions if not isinstance(action, argparse._HelpAction)]

    return {
        "transformers": installed_version("transformers"),
        "train_options": options(TrainOptions),
        "training_arguments": options(TrainingArguments),
        "clip": {
            "model_name": MistVideoProcessor.clip_model_name,
            "batch_size": MistVideoProcessor.clip_batch_size,
            "dtypes": list(CLIP_DTYPES),
        },
        "demo": {
            "synthetic": _plain(dataclasses.asdict(DemoOptions())),
            "patches": _plain(dataclasses.asdict(PatchDemoOptions())),
            "twins": list(TWINS),
        },
    }


def write_help_data(path: Path | None = None) -> None:
    """Store `live_help_data()` (`make help-data` after upgrading transformers or changing an option), one
    option a line."""
    data = live_help_data()
    path = path or HELP_DATA_FILE
    parts = [f'"{key}": {json.dumps(value, ensure_ascii=False)}' for key, value in data.items() if key not in OPTIONS]
    for key in OPTIONS:
        parts.append(f'"{key}": [\n' + ",\n".join(json.dumps(spec, ensure_ascii=False) for spec in data[key]) + "\n]")
    path.write_text("{\n" + ",\n".join(parts) + "\n}\n", encoding="utf-8")


def add_stored_options(parser: argparse.ArgumentParser, specs: list[dict], checked: bool = True) -> None:
    """Add stored `HfArgumentParser` options to `parser`; `checked=False` drops types, choices and required."""
    for spec in specs:
        kwargs = {"dest": spec["dest"], "help": spec["help"]}
        if parser.argument_default is not argparse.SUPPRESS:
            kwargs["default"] = spec["default"]
        if spec.get("action") == "store_false":
            parser.add_argument(*spec["flags"], action="store_false", **kwargs)
            continue
        if checked:
            kwargs.update(
                type=_STORED_TYPES.get(spec["type"], str), choices=spec["choices"], required=spec["required"]
            )
        parser.add_argument(*spec["flags"], nargs=spec["nargs"], const=spec["const"], **kwargs)


def _stored_option(action: argparse.Action) -> dict:
    kind = {int: "int", float: "float"}.get(action.type, "str")
    if getattr(action.type, "__name__", "") == "string_to_bool":
        kind = "bool"
    spec = {
        "flags": list(action.option_strings),
        "dest": action.dest,
        "type": kind,
        "nargs": action.nargs,
        "const": _plain(action.const),
        "default": _plain(action.default),
        "choices": None if action.choices is None else [str(_plain(choice)) for choice in action.choices],
        "required": action.required,
        "help": action.help,
    }
    if isinstance(action, argparse._StoreFalseAction):
        spec = {"flags": spec["flags"], "dest": spec["dest"], "type": "bool", "action": "store_false",
                "default": spec["default"], "help": spec["help"]}  # fmt: skip
    return spec


def _plain(value):
    """`value` as JSON can hold it: enums by their value, tuples as lists, anything else unknown as text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
