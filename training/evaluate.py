"""Evaluation of a trained MIST on one split: accuracy overall and per question type, one record per question.

The same path as evaluation during training: `MistTrainer` with the task's collator, candidates
ranked by `rank_candidates`, the shared open-ended vocabulary embedded once per evaluation.
"""

from datasets import Dataset
from transformers import TrainingArguments

from .data import MistQuestionDataset, VideoFeatureStore, add_question_clip_embeddings
from .factory import make_trainer
from .metrics import load_accuracy
from .trainer import OPEN_ENDED_TOP_K

TOP_ANSWERS_WRITTEN = 5  # candidates (with probabilities) written per question


def evaluate_questions(
    model,
    processor,
    questions: Dataset,
    features: VideoFeatureStore,
    training_args: TrainingArguments,
    split: str = "test",
    group_by: list[str] | None = None,
    zero_video: bool = False,
) -> tuple[dict, list[dict]]:
    """(results, one prediction record per question) of `model` on one split's `questions`.

    `training_args` carries the batch size, data-loader workers, device and precision of the run.
    """
    multiple_choice = "choices" in questions.column_names
    if multiple_choice != model.config.multiple_choice:
        kind = "multiple-choice" if multiple_choice else "open-ended"
        raise ValueError(
            f"the {split!r} questions are {kind} but the model {model.name_or_path!r} is {model.config.task}"
        )
    progress = not training_args.disable_tqdm
    questions = add_question_clip_embeddings({split: questions}, processor.video_processor.encode_text, progress)[split]
    vocabulary = None if multiple_choice else processor.answer_candidates("")
    eval_dataset = MistQuestionDataset(questions, features, vocabulary, keep_unlabeled=True, split=split)
    if len(eval_dataset) == 0:
        raise ValueError(f"no usable {split!r} questions: {eval_dataset.report.summary()}")
    top_k = TOP_ANSWERS_WRITTEN if multiple_choice else max(OPEN_ENDED_TOP_K, TOP_ANSWERS_WRITTEN)
    trainer = make_trainer(
        model, processor, training_args, None, eval_dataset, zero_video=zero_video, top_k=top_k, with_scores=True
    )
    prediction = trainer.predict(eval_dataset, metric_key_prefix=split)
    ranked, scores = prediction.predictions  # [N, k] each

    labels = eval_dataset.labels
    metric = load_accuracy()
    has_types = "question_type" in questions.column_names
    results = {"model": str(model.name_or_path), "split": split, "task": model.config.task}
    results.update(
        metric.compute(
            predictions=ranked.tolist(),
            references=labels,
            question_types=eval_dataset.column("question_type") if has_types else None,
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
    return results, _prediction_records(eval_dataset, ranked, scores, vocabulary)


def _prediction_records(eval_dataset: MistQuestionDataset, ranked, scores, vocabulary) -> list[dict]:
    columns = {
        name: eval_dataset.column(name) for name in ("question_id", "video_id", "question", "answer", "question_type")
    }
    choice_lists = eval_dataset.column("choices") if vocabulary is None else None
    records = []
    for index, label in enumerate(eval_dataset.labels):
        names = choice_lists[index] if vocabulary is None else vocabulary
        top = [
            (names[int(candidate)], round(float(score), 5))
            for candidate, score in zip(ranked[index][:TOP_ANSWERS_WRITTEN], scores[index])
        ]
        record = {name: values[index] for name, values in columns.items() if values[index] is not None}
        record.update(
            prediction=top[0][0], correct=bool(label >= 0 and int(ranked[index][0]) == label), top_answers=top
        )
        records.append(record)
    return records
