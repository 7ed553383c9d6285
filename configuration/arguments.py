"""From a command line and a preset to `TrainingArguments` and a `MistConfig`.

The preset supplies defaults; any `TrainingArguments` field given on the command line under
transformers' own name (`--learning_rate`, `--max_steps`, `--per_device_train_batch_size`, ...)
wins. Model sizes are overridden with `--config_overrides "hidden_size=256,dropout=0.1"`, the
convention of transformers' example scripts.
"""

import argparse
import ast
from collections.abc import Callable, Sequence

from transformers import HfArgumentParser, TrainingArguments

from .presets import PRESETS, Preset, get_preset


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
) -> tuple[object, TrainingArguments, Preset]:
    """Parse `argv` into (`script_arguments` instance, `TrainingArguments`, preset).

    `script_arguments` is a dataclass with a `preset` field. When the command line names no preset,
    `choose_preset(script_args)` picks one (for example from the data); the command line is then
    parsed again so that the chosen preset's training defaults apply. `parser_kwargs` (`prog`,
    `description`) go to the argument parser.
    """
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
    parser.set_defaults(**preset.training, preset=preset.name)
    script_args, training_args = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    return script_args, training_args, preset


def parse_config_overrides(overrides: str | None) -> dict:
    """`"hidden_size=256,dropout=0.1,train_selection=topk"` -> `{"hidden_size": 256, ...}`."""
    if not overrides:
        return {}
    parsed = {}
    for item in overrides.split(","):
        key, sep, raw_value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"config override {item!r} is not of the form key=value (in {overrides!r})")
        try:
            value = ast.literal_eval(raw_value.strip())
        except (ValueError, SyntaxError):
            value = raw_value.strip()  # bare words such as `topk` stay strings
        parsed[key.strip()] = value
    return parsed


def build_model_config_kwargs(preset: Preset, overrides: str | None = None) -> dict:
    """The preset's `MistConfig` keyword arguments with command-line overrides applied."""
    kwargs = {key: (dict(value) if isinstance(value, dict) else value) for key, value in preset.model.items()}
    for key, value in parse_config_overrides(overrides).items():
        if key.startswith("text_config."):
            kwargs.setdefault("text_config", {})[key.removeprefix("text_config.")] = value
        else:
            kwargs[key] = value
    return kwargs
