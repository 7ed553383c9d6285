"""From a preset and `--config-overrides` to the keyword arguments of a `MistConfig`, fitted to the features.

Model sizes are overridden with `"hidden_size=256,dropout=0.1"`, the convention of transformers'
example scripts; sizes that the video features carry (frames, patches, CLIP width) are fitted to
the features (`fit_config_to_features`).
"""

import ast
import math

from huggingface_hub.errors import StrictDataclassError

from configuration.presets import Preset
from modeling_mist import MistConfig


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


def fit_config_to_features(
    kwargs: dict, num_frames: int, num_patches: int, hidden_size: int, overridden: set[str], preset_name: str
) -> tuple[dict, list[str]]:
    """Fit a `MistConfig`'s feature sizes to the features the model will read.

    `kwargs` are the preset's config keyword arguments with the overrides applied; `overridden` the keys
    the user set with `--config-overrides`. The sizes the features carry (`num_frames`, `grid_size`,
    `clip_hidden_size`) replace the preset's when the resulting config is valid. Returns (fitted
    kwargs, one line per change). Raises ValueError when an override contradicts the features, or when
    the preset's model cannot read them, naming the `--config-overrides` that would fit.
    """
    fitted, notes = dict(kwargs), []

    def value(key: str):
        return fitted.get(key, getattr(MistConfig, key))

    def source(key: str) -> str:
        return "--config-overrides" if key in overridden else f"the {preset_name} preset"

    grid_size = math.isqrt(num_patches)
    if grid_size * grid_size != num_patches:
        raise ValueError(f"the features have {num_patches} patches per frame, not a square grid of crops")
    carried = {
        "clip_hidden_size": (hidden_size, f"the features are {hidden_size}-d"),
        "grid_size": (grid_size, f"the features have {num_patches} patches per frame"),
        "num_frames": (num_frames, f"the features have {num_frames} frames per video"),
    }
    for key, (size, why) in carried.items():
        if value(key) == size:
            continue
        if key in overridden:
            raise ValueError(
                f"{why}, but --config-overrides sets {key}={value(key)}: pass --config-overrides {key}={size} "
                "or other features"
            )
        notes.append(f"{key}={size} instead of {value(key)} ({source(key)}): {why}")
        fitted[key] = size

    problem = _config_problem(fitted)
    if problem is None:
        return fitted, notes
    fix = {
        key: fitted[key]
        for key in carried
        if key in fitted and fitted[key] != kwargs.get(key, getattr(MistConfig, key))
    }
    fix.update(_size_fixes(fitted, num_frames, num_patches, hidden_size, kwargs))
    suggestion = ",".join(f"{key}={size}" for key, size in fix.items())
    if _config_problem({**fitted, **fix}) is not None:
        suggestion = f"sizes that fit (e.g. starting from {suggestion})" if suggestion else "sizes that fit"
    model = f"the model of the {preset_name} preset" + (" with these --config-overrides" if overridden else "")
    raise ValueError(f"{model} cannot read them ({problem}): pass --config-overrides {suggestion}")


def _config_problem(kwargs: dict) -> str | None:
    """Why `MistConfig(**kwargs)` is invalid, or None."""
    try:
        MistConfig(**{key: value for key, value in kwargs.items() if key != "text_config"})
    except (ValueError, TypeError, StrictDataclassError) as error:
        cause = error.__cause__ if error.__cause__ is not None else error  # strict dataclasses wrap the reason
        return str(cause).strip().splitlines()[0]
    return None


def _size_fixes(fitted: dict, num_frames: int, num_patches: int, hidden_size: int, preset: dict) -> dict:
    """Overrides that make the config read features of these sizes: segments, selected patches, width."""

    def value(key: str):
        return fitted.get(key, getattr(MistConfig, key))

    fix = {}
    segments = value("num_segments")
    one_frame_segments = value("num_temporal_layers") > 0  # the temporal encoder needs one frame per segment
    if num_frames % segments or (one_frame_segments and num_frames != segments):
        preset_frames = preset.get("num_frames", MistConfig.num_frames)
        frames_per_segment = 1 if one_frame_segments else max(preset_frames // segments, 1)
        if num_frames % frames_per_segment == 0:
            segments = num_frames // frames_per_segment
        else:
            segments = max(d for d in range(1, min(segments, num_frames) + 1) if num_frames % d == 0)
        fix["num_segments"] = segments
        if value("num_selected_segments") > segments:
            fix["num_selected_segments"] = segments
    candidates = num_patches + int(value("frame_as_patch_candidate"))
    if value("use_patch_selection") and value("num_selected_patches") > candidates:
        fix["num_selected_patches"] = candidates
    if value("frame_as_patch_candidate") and value("hidden_size") != hidden_size:
        fix["hidden_size"] = hidden_size  # the raw frame sits beside the encoded patches: one width
    return fix
