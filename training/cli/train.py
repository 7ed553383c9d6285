"""`mist train`: train MIST on a question dataset and its video features with the transformers Trainer.

    mist train --dataset DATA --features FEATURES --output-dir OUT [--preset agqa|nextqa|star|demo|tiny]
               [--text-encoder NAME_OR_PATH] [--config_overrides "hidden_size=256,..."]
               [any TrainingArguments flag: --max_steps, --learning_rate, --per_device_train_batch_size, ...]

Open-ended or multiple choice follows from the data (a `choices` column). The preset defaults to
`nextqa` for multiple choice and `agqa` otherwise. OUT receives a complete `save_pretrained` model
and processor, a README.md model card, and the metrics. Run under `torchrun` or `accelerate launch`
(`-m training.cli train ...`) to train on several processes.
"""

import json
import logging
import sys

from huggingface_hub.errors import StrictDataclassError

from configuration.arguments import parse_with_preset
from training.train import TrainOptions, default_preset, train


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        options, training_args, preset = parse_with_preset(
            argv, TrainOptions, default_preset, prog="mist train", description=__doc__.split("\n\n")[0]
        )
        if not any(arg.split("=")[0] in ("--output_dir", "--output-dir") for arg in argv):
            raise ValueError("--output-dir is required")
        results = train(options, training_args, preset)
    except (ValueError, StrictDataclassError) as error:
        print(f"mist train: {error}", file=sys.stderr)
        return 2
    if training_args.process_index == 0:
        print(json.dumps({split: _printable(metrics) for split, metrics in results.items()}, indent=2))
    return 0


def _printable(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float, str))}
