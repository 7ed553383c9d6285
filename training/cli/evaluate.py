"""`mist evaluate`: accuracy of a trained MIST on one split, overall and per question type.

    mist evaluate --model OUT --dataset DATA --features FEATURES [--split test] [--output-dir DIR]

Prints the results as JSON and writes `DIR/results_<split>.json` and one line per question to
`DIR/predictions_<split>.jsonl` (question id, answer, prediction, whether right, top answers with
scores). DIR defaults to MODEL/eval for a local model folder; for a Hub model nothing is written
unless --output-dir is given. Open-ended answers outside the model's vocabulary count as wrong and
are reported; questions whose video has no features are skipped and reported.
Exit status: 0 done, 1 a file could not be read, 2 unusable arguments.
"""

import json
import sys
import tempfile
from pathlib import Path

from processing.file_utils import write_text_atomically
from training.cli.arguments import MistArgumentParser, available_cpu_workers, default_device, load_trained_model
from training.errors import ReportedErrors, is_local, named_by


def parse_args(argv: list[str] | None):
    parser = MistArgumentParser(prog="mist evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder (or Hub id) written by `mist train`")
    parser.add_argument("--dataset", required=True, help="question dataset (folder, save_to_disk folder or Hub id)")
    parser.add_argument("--features", required=True, help="video features from `mist extract-features`")
    parser.add_argument(
        "--split", default="test", help="split to evaluate (validation also answers to val/dev; default: test)"
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="where results_<split>.json and predictions_<split>.jsonl go (default: MODEL/eval for a local model; "
        "nothing is written for a Hub model without it)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="questions per forward pass (default: 64)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help=f"DataLoader worker processes reading features (default: 0, the main process; this machine can "
        f"run {available_cpu_workers()} beside it)",
    )
    parser.add_argument("--group-by", default="", help="more columns to break accuracy down by, comma-separated")
    parser.add_argument("--features-split", default="train", help="split of a Hub features dataset (default: train)")
    parser.add_argument(
        "--clip-pretrained", default=None, help="override the processor's CLIP weights ('none': random)"
    )
    parser.add_argument("--zero-video", action="store_true", help="zero the video features (question-only check)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--device",
        default=None,
        help="cpu or cuda (default: cuda if present)",
    )
    return parser.parse_args(argv)


def output_dir_for(args) -> Path | None:
    if args.output_dir is not None:
        return Path(args.output_dir)
    return Path(args.model) / "eval" if is_local(args.model) else None


def run(args) -> int:
    import torch  # torch and the library load here, so that --help and usage errors answer at once
    from transformers import TrainingArguments

    from training.data import (
        VideoFeatureStore,
        check_features_fit_model,
        check_processor_clip,
        check_question_embeddings,
        feature_geometry,
        get_split,
        load_features,
        load_questions,
    )
    from training.evaluate import evaluate_questions
    args.device = args.device or default_device()
    model, processor = load_trained_model(args.model, args.clip_pretrained, args.device)
    with named_by("--dataset"):
        questions = get_split(load_questions(args.dataset), args.split, args.dataset)
    with named_by("--features"):
        features = load_features(args.features, args.features_split)
        check_features_fit_model(feature_geometry(features, args.features), model.config, args.features, args.model)
        check_processor_clip(processor, features, args.features, args.model, args.clip_pretrained)
    with named_by("--dataset"):
        check_question_embeddings({args.split: questions}, model.config.clip_hidden_size, args.dataset)
    with tempfile.TemporaryDirectory() as scratch:  # the Trainer's output_dir; nothing is saved there
        run_args = TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=args.batch_size,
            dataloader_num_workers=args.num_workers,
            use_cpu=torch.device(args.device).type == "cpu",
            report_to="none",
            disable_tqdm=args.no_progress,
        )
        results, records = evaluate_questions(
            model,
            processor,
            questions,
            VideoFeatureStore(features),
            run_args,
            split=args.split,
            group_by=[column for column in args.group_by.split(",") if column],
            zero_video=args.zero_video,
        )
    results["dataset"] = args.dataset
    output_dir = output_dir_for(args)
    if output_dir is not None:
        results["predictions_file"] = str(output_dir / f"predictions_{args.split}.jsonl")
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        write_text_atomically(results["predictions_file"], lines)
        write_text_atomically(output_dir / f"results_{args.split}.json", json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    if output_dir is None:
        print(
            "mist evaluate: nothing written (a Hub model has no folder here): pass --output-dir to keep the "
            "results and the per-question predictions",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with ReportedErrors("mist evaluate", args.debug) as outcome:
        return run(args)
    return outcome.status
