"""`mist extract-features`: CLIP frame and patch features of a set of videos, as a `datasets` dataset.

    mist extract-features videos/ --output-dir features/agqa [--preset agqa | --model DIR]
    accelerate launch --num_processes 8 -m training.cli extract-features videos/ --output-dir features/agqa
    torchrun --nproc_per_node 2 -m training.cli extract-features videos/ --output-dir features/agqa

Frames, grid, crop size and the CLIP model are those of the model the features are for: a
preset's config (default `agqa`, the paper's settings) or a trained model's (`--model`: the sizes its
config reads, the CLIP its processor runs); each can still be set on its own. Resumable and multi-process: see
`processing.extract_features`. An OUTPUT_DIR that already holds features made with the same settings
is extended (its videos are kept, not computed again); one made with other settings is refused.
Exit status: 0 all videos written, 1 some videos failed (the good ones are written) or a file could
not be read, 2 unusable arguments.
"""

import argparse
import os
import sys
from typing import TYPE_CHECKING

from configuration.presets import PRESETS
from training.cli.arguments import MistArgumentParser, help_data
from training.errors import BrokenFileError, ReportedErrors, check_local_or_hub, hub_failure, named_by

if TYPE_CHECKING:  # torch, CLIP and the library load in the functions that use them: --help answers at once
    from modeling_mist import MistConfig, MistVideoProcessor


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = MistArgumentParser(
        prog="mist extract-features",
        description="CLIP frame and patch features of videos, written as a datasets dataset "
        "(resumable, multi-process).",
    )
    clip = help_data()["clip"]  # the video processor's defaults, without importing torch
    add_input_options(parser)
    add_size_options(parser, clip["model_name"])
    add_run_options(parser, clip)
    add_question_and_upload_options(parser)
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """The videos, and where their features and the per-video results go."""
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="folder of videos, glob, video file, list file, zip archive of videos (members decoded in place), or a "
        "Hub dataset id or its downloaded folder (every archive in it)",
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        help="where the dataset is saved (load_from_disk); a dataset already there made with the same settings is "
        "extended with the new videos",
    )
    parser.add_argument("--work-dir", help="per-video results for resuming (default: OUTPUT_DIR.work)")


def add_size_options(parser: argparse.ArgumentParser, clip_model_name: str) -> None:
    """What the features are for: a preset or a trained model, and each size on its own."""
    sizes = parser.add_argument_group("what the features are for (default: the agqa preset)")
    sizes.add_argument("--preset", choices=sorted(PRESETS), help="take frames, grid and crop size from this preset")
    sizes.add_argument(
        "--model", help="take them from this trained model's config, and the CLIP model and weights from its processor"
    )
    sizes.add_argument("--clip-model", help=f"open_clip model name or local-dir:PATH (default: {clip_model_name})")
    sizes.add_argument(
        "--clip-pretrained",
        help="CLIP weights: an open_clip pretrained tag (default: openai, downloaded from the Hugging Face Hub on "
        "first use, about 350 MB, then cached), a local checkpoint FILE (offline), or 'none' (random, tests only)",
    )
    sizes.add_argument("--num-frames", type=int, help="frames sampled per video")
    sizes.add_argument("--grid-size", type=int, help="crops per frame side (patches = grid_size**2)")
    sizes.add_argument("--crop-size", type=int, help="CLIP input size")


def add_run_options(parser: argparse.ArgumentParser, clip: dict) -> None:
    """Batching, decoding threads, precision and device."""
    parser.add_argument("--batch-size", type=int, default=4, help="videos encoded together (default: 4)")
    parser.add_argument(
        "--clip-batch-size",
        type=int,
        default=clip["batch_size"],
        help=f"images per CLIP forward pass (default: {clip['batch_size']})",
    )
    parser.add_argument("--decode-workers", type=int, default=4, help="threads decoding videos ahead (default: 4)")
    parser.add_argument(
        "--dtype", choices=("float16", "float32"), default="float16", help="stored feature type (default: float16)"
    )
    parser.add_argument("--device", help="device for CLIP (default: this process's accelerate device)")
    parser.add_argument(
        "--clip-dtype",
        choices=("auto", *clip["dtypes"]),
        default="auto",
        help="precision CLIP runs in: auto (float16 autocast on GPU, float32 on CPU), or its weights cast to this "
        "type once (bfloat16: about 2x faster on CPUs with AVX512-BF16 or AMX) (default: auto)",
    )


def add_question_and_upload_options(parser: argparse.ArgumentParser) -> None:
    """Clips and question embeddings, what is kept, the upload and the progress bar."""
    parser.add_argument(
        "--clips",
        help="questions file whose rows are clips (STAR): one feature row per feature_id (or question_id), "
        "sampled from start to end seconds of its video_id",
    )
    parser.add_argument("--questions", help="questions file (jsonl, json or parquet) to add CLIP text embeddings to")
    parser.add_argument("--questions-output", help="where the questions file with embeddings goes")
    parser.add_argument(
        "--question-column", default="question", help="question text column of --questions (default: question)"
    )
    parser.add_argument("--keep-work-dir", action="store_true", help="keep the per-video files after success")
    parser.add_argument(
        "--push-to-hub", metavar="ID", help="upload the features as this Hub dataset, with a dataset card"
    )
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: a private dataset")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options that go together, exclude each other or must be positive."""
    if bool(args.questions) != bool(args.questions_output):
        parser.error("--questions and --questions-output go together")
    if args.preset and args.model:
        parser.error("--preset and --model both say what the features are for: pass one")
    for name in ("num_frames", "grid_size", "crop_size", "batch_size", "clip_batch_size", "decode_workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def load_saved(model: str, part: "type[MistConfig] | type[MistVideoProcessor]", what: str):
    """The config or video processor saved with a trained model (`--model`), with one-line errors."""
    try:
        return part.from_pretrained(model)
    except Exception as error:  # noqa: BLE001  (a missing path, a Hub failure or a broken file)
        with named_by("--model"):
            if check_local_or_hub(model) == "hub":
                raise hub_failure(model, "model", error) from error
        raise BrokenFileError(
            f"{model}: no MIST {what} can be loaded from it ({type(error).__name__}: {error}); expected "
            "the folder that `mist train --output-dir` writes"
        ) from error


def resolve_sizes(args: argparse.Namespace) -> dict:
    """Frames, grid, crop and CLIP choice: each flag given wins, then `--model`'s (the sizes its config reads,
    the CLIP its processor runs), then the preset's."""
    from configuration.presets import get_preset
    from modeling_mist import MistConfig, MistVideoProcessor
    from modeling_mist.clip_runtime_mist import parse_clip_pretrained
    from training.model_config import build_model_config_kwargs

    if args.model:
        saved = load_saved(args.model, MistVideoProcessor, "video processor")
        config = load_saved(args.model, MistConfig, "config")
        clip = {"clip_model": saved.clip_model_name, "clip_pretrained": saved.clip_pretrained}
    else:
        config = MistConfig(**build_model_config_kwargs(get_preset(args.preset or "agqa")))
        clip = {"clip_model": MistVideoProcessor.clip_model_name, "clip_pretrained": MistVideoProcessor.clip_pretrained}
    defaults = {"num_frames": config.num_frames, "grid_size": config.grid_size, "crop_size": config.crop_size, **clip}
    sizes = {
        name: getattr(args, name) if getattr(args, name) is not None else value for name, value in defaults.items()
    }
    sizes["clip_pretrained"] = parse_clip_pretrained(sizes["clip_pretrained"])
    return sizes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from modeling_mist.clip_runtime_mist import parse_clip_dtype
    from processing.dataset_card import push_features
    from processing.extract_features import ExtractionOptions, extract_features

    command_only = ("preset", "model", "debug", "push_to_hub", "private")
    options = {name: value for name, value in vars(args).items() if name not in command_only}
    # usage: the command names something unusable, or settings differ from the output's;
    # failures: a file or folder it names cannot be read or written
    work_dir = args.work_dir or os.path.normpath(args.output_dir) + ".work"
    kept = f"the finished videos are kept in {work_dir}: run the same command again to continue"
    with ReportedErrors("mist extract-features", args.debug, (ValueError,), (OSError, RuntimeError), kept) as outcome:
        options.update(resolve_sizes(args), clip_dtype=parse_clip_dtype(args.clip_dtype))
        summary = extract_features(ExtractionOptions(**options))
    if outcome.status is not None:
        return outcome.status
    if not summary.main_process:
        return 0  # the main process reports everyone's failures and sets the exit status
    if summary.questions_written is not None:
        print(f"wrote {summary.questions_written} questions with CLIP embeddings to {args.questions_output}")
    if summary.rows:
        written = summary.rows - summary.kept_from_earlier
        line = (
            f"wrote {written} of {summary.videos} videos to {args.output_dir} "
            f"({summary.computed} computed now, {written - summary.computed} reused)"
        )
        if summary.kept_from_earlier:
            line += f"; kept the {summary.kept_from_earlier} other videos already there ({summary.rows} in all)"
        print(line)
    else:
        print(f"no video could be encoded: nothing written to {args.output_dir}", file=sys.stderr)
    if summary.skipped_members:
        print(f"skipped {summary.skipped_members} archive members that are not videos")
    if summary.rows and args.push_to_hub:
        with ReportedErrors("mist extract-features", args.debug, failures=(OSError, RuntimeError)) as pushed:
            url = push_features(args.output_dir, args.push_to_hub, args.private, source=", ".join(args.inputs))
            print(f"pushed the features to {url}")
        if pushed.status is not None:
            return pushed.status
    if summary.failures:
        print(f"{len(summary.failures)} videos failed and were skipped (rerun to retry them):", file=sys.stderr)
        for failure in summary.failures:
            print(f"  {failure['reason']}", file=sys.stderr)
        return 1
    return 0
