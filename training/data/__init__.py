"""Question datasets joined lazily with per-video CLIP features.

* `questions`: loading and checking question datasets, the answer vocabulary, the data report.
* `features`: the features dataset `mist extract-features` writes, its sizes, and `VideoFeatureStore`.
* `dataset`: `MistQuestionDataset`, one split's questions with labels and features for the Trainer.
"""

from .dataset import ExampleBatch, MistQuestionDataset
from .features import (
    FEATURE_COLUMNS,
    FeatureGeometry,
    VideoFeatureStore,
    check_features_fit_model,
    check_processor_clip,
    clip_for_features,
    feature_geometry,
    feature_settings,
    load_features,
)
from .questions import (
    FEATURE_KEY_COLUMN,
    QUESTION_COLUMNS,
    DataReport,
    add_question_clip_embeddings,
    build_answer_vocabulary,
    check_question_embeddings,
    choice_label,
    find_split,
    get_split,
    is_multiple_choice,
    load_questions,
    read_answer_vocabulary,
)

__all__ = [
    "FEATURE_COLUMNS",
    "FEATURE_KEY_COLUMN",
    "QUESTION_COLUMNS",
    "DataReport",
    "ExampleBatch",
    "FeatureGeometry",
    "MistQuestionDataset",
    "VideoFeatureStore",
    "add_question_clip_embeddings",
    "build_answer_vocabulary",
    "check_features_fit_model",
    "check_processor_clip",
    "clip_for_features",
    "check_question_embeddings",
    "choice_label",
    "feature_geometry",
    "feature_settings",
    "find_split",
    "get_split",
    "is_multiple_choice",
    "load_features",
    "load_questions",
    "read_answer_vocabulary",
]
