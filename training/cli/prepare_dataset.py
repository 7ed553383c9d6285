"""`mist prepare-dataset`: convert published annotations (NExT-QA, STAR, AGQA 2.0, Env-QA) to question files.

    mist prepare-dataset --format nextqa|agqa|star|envqa ANNOTATION_FILES... --output-dir DIR

Writes `DIR/{train,validation,test}.jsonl` (see `processing.prepare_dataset` for the schema and the
formats) and `DIR/conversion_report.json`, and prints how many questions each split kept and why
the others were skipped. Each file is written under a temporary name and renamed, so an interrupted
run leaves the earlier files whole. Exit status: 0 done, 1 an annotation file cannot be converted,
2 an input does not exist.
"""

import json

from processing.prepare_dataset import READERS, convert
from training.cli.arguments import MistArgumentParser
from training.errors import ReportedErrors


FORMATS = """formats (the files as published; the split of each comes from its name, or --split):
  nextqa  NExT-QA train.csv / val.csv / test.csv: video, question, answer (the right a0..a4), qid, type, a0..a4
  star    STAR STAR_train.json / STAR_val.json / STAR_test.json: question_id, video_id, start, end, answer,
          choices (each question is about its clip: extract with mist extract-features VIDEOS --clips FILE)
  agqa    AGQA 2.0 train_balanced.txt / test_balanced.txt: JSON keyed by question id (question, answer,
          video_id, global, ...)
  envqa   Env-QA train_full_question.json / val_full_question.json / test_full_question.json: question_id,
          video_id, question, answer

Output: one question per line with question_id, video_id, question, answer, choices (multiple choice),
question_type, plus conversion_report.json (see processing/prepare_dataset.py)."""


def main(argv: list[str] | None = None) -> int:
    parser = MistArgumentParser(prog="mist prepare-dataset", description=__doc__.split("\n\n")[0], epilog=FORMATS)
    parser.add_argument(
        "--format", required=True, choices=sorted(READERS), dest="dataset_format", help="annotation format"
    )
    parser.add_argument("inputs", nargs="+", help="annotation files of the chosen format")
    parser.add_argument("--output-dir", required=True, help="folder for train/validation/test.jsonl")
    parser.add_argument(
        "--split",
        default=None,
        help="split name (train, validation, test) of a single input whose file name does not tell",
    )
    args = parser.parse_args(argv)
    # usage: an input that does not exist; failures: an input that cannot be converted
    prog, failures = "mist prepare-dataset", (ValueError, RuntimeError, OSError)
    with ReportedErrors(prog, args.debug, usage=(FileNotFoundError,), failures=failures) as outcome:
        reports = convert(args.dataset_format, args.inputs, args.output_dir, split=args.split)
    if outcome.status is not None:
        return outcome.status
    print(json.dumps({name: report.as_dict() for name, report in reports.items()}, indent=2))
    return 0
