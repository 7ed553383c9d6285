"""The offline demo: a synthetic long-form video QA task (`synthetic_dataset`) and the run that trains,
compares and explains MIST on it (`runner`)."""

from .runner import DemoOptions, run_demo
from .synthetic_dataset import OBJECT_WORDS, SyntheticTaskConfig, SyntheticVideoQA, answer_vocabulary

__all__ = ["OBJECT_WORDS", "DemoOptions", "SyntheticTaskConfig", "SyntheticVideoQA", "answer_vocabulary", "run_demo"]
