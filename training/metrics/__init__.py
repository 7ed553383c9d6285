"""Evaluation metrics, as `evaluate` modules that load offline from this folder."""

from pathlib import Path

ACCURACY_PATH = Path(__file__).with_name("mist_accuracy.py")


def load_accuracy():
    """The video QA accuracy metric (`mist_accuracy.py`) through `evaluate.load`, no network needed."""
    import evaluate

    # In memory: several processes computing metrics must not share a cache file.
    return evaluate.load(str(ACCURACY_PATH), keep_in_memory=True)
