"""Video QA accuracy: overall, per question type, and top-k for open-ended answers.

Load offline with `evaluate.load("<path to this file>")` (or `training.metrics.load_accuracy()`).
"""

from collections import defaultdict

import datasets
import evaluate

_DESCRIPTION = """
Accuracy of video question answering. Each prediction is the list of candidate indices ranked by
score (best first; a single index is fine when only top-1 matters); each reference is the index of
the right candidate, or -100 for a question whose answer is no candidate (it counts as wrong, as
in the MIST reference evaluation of open-ended answers outside the vocabulary).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`): candidate indices, best first.
    references (`list[int]`): right candidate per question (-100: none, always wrong).
    question_types (`list[str | list[str]]`, *optional*): type of each question; a list puts the
        question in each of its types (AGQA's reasoning categories overlap).
    top_k (`int`, *optional*): also report `top{k}_accuracy` (10 for open-ended, as in the paper).
Returns:
    accuracy (`float`): top-1 accuracy.
    top{k}_accuracy (`float`): right answer among the first k (when `top_k` is given).
    num_questions (`int`).
    accuracy_by_type (`dict[str, float]`), count_by_type (`dict[str, int]`): when types are given.
Examples:
    >>> metric = evaluate.load("training/metrics/mist_accuracy.py")
    >>> metric.compute(predictions=[[2, 0], [1, 2]], references=[2, 0], question_types=["why", "how"])
    {'accuracy': 0.5, 'num_questions': 2, 'accuracy_by_type': {'how': 0.0, 'why': 1.0}, 'count_by_type': {'how': 1, 'why': 1}}
"""

_CITATION = """
@inproceedings{gao2023mist,
  title={MIST: Multi-modal Iterative Spatial-Temporal Transformer for Long-form Video Question Answering},
  author={Gao, Difei and Zhou, Luowei and Ji, Lei and Zhu, Linchao and Yang, Yi and Shou, Mike Zheng},
  booktitle={CVPR},
  year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MistAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("int64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, question_types=None, top_k=None):
        if question_types is not None and len(question_types) != len(references):
            raise ValueError(f"got {len(question_types)} question_types for {len(references)} references")
        if any(len(ranked) == 0 for ranked in predictions):
            raise ValueError("every prediction needs at least one ranked candidate")
        top1 = [bool(ranked) and ranked[0] == reference for ranked, reference in zip(predictions, references)]
        results = {"accuracy": _mean(top1)}
        if top_k is not None:
            in_top_k = [reference in list(ranked[:top_k]) for ranked, reference in zip(predictions, references)]
            results[f"top{top_k}_accuracy"] = _mean(in_top_k)
        results["num_questions"] = len(references)
        if question_types is not None:
            correct_by_type, count_by_type = defaultdict(int), defaultdict(int)
            for correct, kinds in zip(top1, question_types):
                for kind in [kinds] if isinstance(kinds, str) or kinds is None else kinds:
                    kind = "unknown" if kind is None else str(kind)
                    count_by_type[kind] += 1
                    correct_by_type[kind] += int(correct)
            results["accuracy_by_type"] = {
                kind: correct_by_type[kind] / count_by_type[kind] for kind in sorted(count_by_type)
            }
            results["count_by_type"] = dict(sorted(count_by_type.items()))
        return results


def _mean(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0
