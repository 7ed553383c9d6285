"""`mist prepare-dataset`: questions of NExT-QA, STAR, EgoSchema, ActivityNet-QA, AGQA 2.0 or Env-QA as question files.

    mist prepare-dataset SOURCE... --output-dir DIR [--format F] [--config NAME] [--split S] [--push-to-hub ID]

SOURCE is annotation files, a Hub dataset id (`lmms-eval/NExTQA`), or a folder laid out like that Hub
repository (`hf download --repo-type dataset ID --local-dir DIR`). Writes `DIR/{train,validation,test}.jsonl`
(see `processing.prepare_dataset` for the schema, `processing.question_formats` for the formats) and
`DIR/conversion_report.json`, and prints how many questions each split kept and why the others were
skipped. Each file is written under a temporary name and renamed, so an interrupted run leaves the
earlier files whole. Exit status: 0 done, 1 an input cannot be converted or the upload failed, 2 an
input does not exist.
"""

import json

from processing.prepare_dataset import convert
from processing.question_formats import CONVERTERS
from training.cli.arguments import MistArgumentParser
from training.errors import ReportedErrors


FORMATS = """sources: annotation files, a Hub dataset id (its question files are downloaded, not its videos), or a
folder laid out like that Hub repository (hf download --repo-type dataset ID --local-dir DIR)

formats (recognised from the columns; --format forces one):
  nextqa         NExT-QA: the GitHub train.csv / val.csv / test.csv and lmms-eval/NExTQA (--config MC or OE):
                 video, qid, question, type, a0..a4 and answer (the right one's index; OE: the answer text)
  star           STAR: STAR_train.json / STAR_val.json and zechen-nlp/star_bench (configs interaction, sequence,
                 prediction, feasibility): question_id, video_id, start, end, answer, choices (each question is
                 about its clip: extract with mist extract-features VIDEOS --clips FILE)
  egoschema      EgoSchema, lmms-eval/egoschema (--config Subset): question_idx, video_idx, option, answer
  activitynetqa  ActivityNet-QA, lmms-eval/ActivityNetQA or the release's train_q.json with train_a.json beside
                 it: video_name, question_id, question, answer, type
  agqa           AGQA 2.0 train_balanced.txt / test_balanced.txt: JSON keyed by question id
  envqa          Env-QA train_full_question.json / val_full_question.json / test_full_question.json

Output: one question per line with question_id, video_id (the video file's stem in the dataset's archives),
question, answer, choices (multiple choice), question_type, plus conversion_report.json (see
docs/datasets.md)."""


def main(argv: list[str] | None = None) -> int:
    parser = MistArgumentParser(prog="mist prepare-dataset", description=__doc__.split("\n\n")[0], epilog=FORMATS)
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="SOURCE",
        help="annotation files, a Hub dataset id, or a folder laid out like that Hub repository",
    )
    parser.add_argument("--output-dir", required=True, help="folder for train/validation/test.jsonl")
    parser.add_argument(
        "--format",
        default=None,
        choices=sorted(CONVERTERS),
        dest="dataset_format",
        help="the questions' format (default: recognised from the columns)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="config of a Hub dataset to convert, e.g. MC or OE for NExT-QA (default: all, when they have the "
        "same columns)",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="split of a single annotation file whose name does not tell; of a Hub dataset, the one split to convert",
    )
    parser.add_argument("--push-to-hub", default=None, metavar="ID", help="upload the questions as this Hub dataset")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: a private dataset")
    args = parser.parse_args(argv)
    # usage: an input that does not exist; failures: an input that cannot be converted, an upload that failed
    prog, failures = "mist prepare-dataset", (ValueError, RuntimeError, OSError)
    with ReportedErrors(prog, args.debug, usage=(FileNotFoundError,), failures=failures) as outcome:
        reports = convert(args.dataset_format, args.inputs, args.output_dir, split=args.split, config=args.config)
        if args.push_to_hub:
            from processing.dataset_card import push_questions  # datasets and torch: only when pushing

            url = push_questions(args.output_dir, args.push_to_hub, private=args.private)
    if outcome.status is not None:
        return outcome.status
    print(json.dumps({name: report.as_dict() for name, report in reports.items()}, indent=2))
    if args.push_to_hub:
        print(f"pushed the questions to {url}")
    return 0
