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
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .data import MistQuestionDataset, VideoFeatureStore, get_split, load_features, load_questions
from .metrics import load_accuracy
from .trainer import OPEN_ENDED_TOP_K, predict_ranked

TOP_ANSWERS_WRITTEN = 5


def load_trained(model_path: str, clip_pretrained: str | None = None, device: str = "cpu"):
    """The model and processor saved by `mist train`; `clip_pretrained` overrides the processor's CLIP weights."""
    from transformers import AutoModel, AutoProcessor

    import modeling_mist  # noqa: F401  (registers MIST with the Auto classes)

    model = AutoModel.from_pretrained(model_path).to(device).eval()
    processor = AutoProcessor.from_pretrained(model_path)
    if clip_pretrained is not None:
        processor.video_processor.clip_pretrained = None if clip_pretrained.lower() == "none" else clip_pretrained
    return model, processor


def candidate_names(processor, config, multiple_choice: bool, choices: list | None = None) -> list[str]:
    if multiple_choice:
        return list(choices)
    if processor.answer_vocabulary is not None:
        return processor.answer_vocabulary
    return [config.id2label[index] for index in sorted(config.id2label)]


def evaluate_split(
    model,
    processor,
    dataset: str,
    features: str,
    split: str = "test",
    batch_size: int = 64,
    group_by: list[str] | None = None,
    features_split: str = "train",
    num_workers: int = 0,
    zero_video: bool = False,
    device: str = "cpu",
) -> tuple[dict, list[dict]]:
    """(results, one prediction record per question) of `model` on a split."""
    from .train import add_question_clip_embeddings, make_collator

    splits = load_questions(dataset)
    questions = get_split(splits, split, dataset)
    questions = add_question_clip_embeddings({split: questions}, processor)[split]
    store = VideoFeatureStore(load_features(features, features_split))
    multiple_choice = "choices" in questions.column_names
    if multiple_choice != bool(getattr(model.config, "choice_template", None)):
        kind = "multiple-choice" if multiple_choice else "open-ended"
        raise ValueError(
            f"the {split!r} questions are {kind} but the model {model.name_or_path!r} was trained otherwise"
        )
    vocabulary = None if multiple_choice else candidate_names(processor, model.config, False)
    eval_dataset = MistQuestionDataset(questions, store, vocabulary, keep_unlabeled=True, split=split)
    loader = DataLoader(
        eval_dataset,
        batch_size=batch_size,
        collate_fn=make_collator(processor, model.config, zero_video=zero_video),
        num_workers=num_workers,
    )
    top_k = TOP_ANSWERS_WRITTEN if multiple_choice else max(OPEN_ENDED_TOP_K, TOP_ANSWERS_WRITTEN)
    ranked, scores = predict_ranked(model, loader, top_k=top_k, device=device)

    labels = eval_dataset.labels
    metric = load_accuracy()
    results = {"model": str(model.name_or_path), "dataset": dataset, "split": split}
    results["task"] = "multiple-choice" if multiple_choice else "open-ended"
    results.update(
        metric.compute(
            predictions=ranked.tolist(),
            references=labels,
            question_types=eval_dataset.column("question_type") if "question_type" in questions.column_names else None,
            top_k=None if multiple_choice else OPEN_ENDED_TOP_K,
        )
    )
    for column in group_by or []:
        if column in questions.column_names and column != "question_type":
            grouped = metric.compute(
                predictions=ranked.tolist(), references=labels, question_types=eval_dataset.column(column)
            )
            results[f"accuracy_by_{column}"] = grouped["accuracy_by_type"]
    results["data"] = eval_dataset.report.as_dict()

    records = []
    columns = {
        name: eval_dataset.column(name) for name in ("question_id", "video_id", "question", "answer", "question_type")
    }
    choice_lists = eval_dataset.column("choices") if multiple_choice else None
    for index, label in enumerate(labels):
        names = candidate_names(
            processor, model.config, multiple_choice, choice_lists[index] if multiple_choice else None
        )
        top = [(names[int(c)], round(float(s), 5)) for c, s in zip(ranked[index][:TOP_ANSWERS_WRITTEN], scores[index])]
        record = {name: values[index] for name, values in columns.items() if values[index] is not None}
        record.update(
            prediction=top[0][0], correct=bool(label >= 0 and int(ranked[index][0]) == label), top_answers=top
        )
        records.append(record)
    return results, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mist evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="folder (or Hub id) written by `mist train`")
    parser.add_argument("--dataset", required=True, help="question dataset (folder, save_to_disk folder or Hub id)")
    parser.add_argument("--features", required=True, help="video features from `mist extract-features`")
    parser.add_argument("--split", default="test")
    parser.add_argument("--output-dir", default=".", help="where results_<split>.json and predictions_<split>.jsonl go")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers reading features")
    parser.add_argument("--group-by", default="", help="more columns to break accuracy down by, comma-separated")
    parser.add_argument("--features-split", default="train", help="split of a Hub features dataset")
    parser.add_argument(
        "--clip-pretrained", default=None, help="override the processor's CLIP weights ('none': random)"
    )
    parser.add_argument("--zero-video", action="store_true", help="zero the video features (question-only check)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    try:
        model, processor = load_trained(args.model, args.clip_pretrained, args.device)
        results, records = evaluate_split(
            model,
            processor,
            args.dataset,
            args.features,
            split=args.split,
            batch_size=args.batch_size,
            group_by=[column for column in args.group_by.split(",") if column],
            features_split=args.features_split,
            num_workers=args.num_workers,
            zero_video=args.zero_video,
            device=args.device,
        )
    except ValueError as error:
        print(f"mist evaluate: {error}", file=sys.stderr)
        return 2
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
