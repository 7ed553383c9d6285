"""`mist evaluate`: accuracy of a trained MIST on one split, overall and per question type.

    mist evaluate --model OUT --dataset DATA --features FEATURES [--split test] [--output-dir DIR]

Prints the results as JSON and writes `DIR/results_<split>.json` and one line per question to
`DIR/predictions_<split>.jsonl` (question id, answer, prediction, whether right, top answers with
scores). Open-ended answers outside the model's vocabulary count as wrong and are reported;
questions whose video has no features are skipped and reported.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from transformers import TrainingArguments

from training.data import VideoFeatureStore, get_split, load_features, load_questions
from training.evaluate import evaluate_questions
from training.factory import load_trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mist evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="folder (or Hub id) written by `mist train`")
    parser.add_argument("--dataset", required=True, help="question dataset (folder, save_to_disk folder or Hub id)")
    parser.add_argument("--features", required=True, help="video features from `mist extract-features`")
    parser.add_argument("--split", default="test", help="split to evaluate (validation also answers to val/dev)")
    parser.add_argument("--output-dir", default=".", help="where results_<split>.json and predictions_<split>.jsonl go")
    parser.add_argument("--batch-size", type=int, default=64, help="questions per forward pass")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers reading features")
    parser.add_argument("--group-by", default="", help="more columns to break accuracy down by, comma-separated")
    parser.add_argument("--features-split", default="train", help="split of a Hub features dataset")
    parser.add_argument(
        "--clip-pretrained", default=None, help="override the processor's CLIP weights ('none': random)"
    )
    parser.add_argument("--zero-video", action="store_true", help="zero the video features (question-only check)")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: cuda if present)"
    )
    args = parser.parse_args(argv)

    try:
        model, processor = load_trained(args.model, args.clip_pretrained, args.device)
        questions = get_split(load_questions(args.dataset), args.split, args.dataset)
        features = VideoFeatureStore(load_features(args.features, args.features_split))
        with tempfile.TemporaryDirectory() as scratch:  # the Trainer's output_dir; nothing is saved there
            run_args = TrainingArguments(
                output_dir=scratch,
                per_device_eval_batch_size=args.batch_size,
                dataloader_num_workers=args.num_workers,
                use_cpu=torch.device(args.device).type == "cpu",
                report_to="none",
            )
            results, records = evaluate_questions(
                model,
                processor,
                questions,
                features,
                run_args,
                split=args.split,
                group_by=[column for column in args.group_by.split(",") if column],
                zero_video=args.zero_video,
            )
    except ValueError as error:
        print(f"mist evaluate: {error}", file=sys.stderr)
        return 2
    results["dataset"] = args.dataset
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results["predictions_file"] = str(output_dir / f"predictions_{args.split}.jsonl")
    with open(results["predictions_file"], "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(output_dir / f"results_{args.split}.json", "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    print(json.dumps(results, indent=2))
    return 0
