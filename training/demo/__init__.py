"""The offline demo: a synthetic long-form video QA task (`synthetic_dataset`) and the run that trains,
compares and explains MIST on it (`runner`); and a second task whose answers only the selected patches hold
(`patch_task`), with the twins that bound MIST on it (`patch_twins`) and their run (`patch_runner`)."""

from .patch_runner import PatchDemoOptions, run_patch_demo
from .patch_task import PatchTaskConfig, PatchVideoQA
from .runner import DemoOptions, run_demo
from .synthetic_dataset import OBJECT_WORDS, SyntheticTaskConfig, SyntheticVideoQA, answer_vocabulary

__all__ = [
    "OBJECT_WORDS",
    "DemoOptions",
    "PatchDemoOptions",
    "PatchTaskConfig",
    "PatchVideoQA",
    "SyntheticTaskConfig",
    "SyntheticVideoQA",
    "answer_vocabulary",
    "run_demo",
    "run_patch_demo",
]
