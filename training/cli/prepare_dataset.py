"""`mist prepare-dataset`: convert published annotations (NExT-QA, STAR, AGQA 2.0, Env-QA) to question files.

    mist prepare-dataset --format nextqa|agqa|star|envqa ANNOTATION_FILES... --output-dir DIR

Writes `DIR/{train,validation,test}.jsonl` (see `processing.prepare_dataset` for the schema and the
formats) and `DIR/conversion_report.json`, and prints how many questions each split kept and why
the others were skipped.
"""

import argparse
import json
import sys

from processing.prepare_dataset import READERS, convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mist prepare-dataset",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--format", required=True, choices=sorted(READERS), dest="dataset_format", help="annotation format"
    )
    parser.add_argument("inputs", nargs="+", help="annotation files of the chosen format")
    parser.add_argument("--output-dir", required=True, help="folder for train/validation/test.jsonl")
    parser.add_argument("--split", default=None, help="split name for a single input whose file name does not tell")
    args = parser.parse_args(argv)
    try:
        reports = convert(args.dataset_format, args.inputs, args.output_dir, split=args.split)
    except (ValueError, KeyError, json.JSONDecodeError) as error:
        print(f"mist prepare-dataset: {error}", file=sys.stderr)
        return 1
    print(json.dumps({name: report.as_dict() for name, report in reports.items()}, indent=2))
    return 0
