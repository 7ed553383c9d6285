"""The three models of the original MIST code (AGQA, NExT-QA, STAR): the `MistConfig` settings that make each.

One table for the checkpoint converter (`convert_original_checkpoint`, whose defaults these are) and
the training presets (`configuration/presets.py`); docs/variants.md explains every switch.
"""

VARIANT_NAMES = {"agqa": "AGQA", "nextqa": "NExT-QA", "star": "STAR"}

# Sizes no tensor carries: the reference's values (the converter's defaults, overridable on its command line).
REFERENCE_SIZES = {
    "agqa": dict(num_frames=32, num_segments=8, grid_size=4, num_selected_segments=2, num_selected_patches=12),
    "nextqa": dict(num_frames=32, num_segments=32, grid_size=4, num_selected_segments=1, num_selected_patches=16),
    "star": dict(num_frames=32, num_segments=8, grid_size=4, num_selected_segments=2, num_selected_patches=16),
}

# How the NExT-QA and STAR references write a multiple-choice candidate for the answer encoder.
QUESTION_SEP_CHOICE = "{question} {sep} {choice}"

# The switches that make each variant (docs/variants.md, "Options"); the AGQA values are MistConfig's defaults.
REFERENCE_OPTIONS = {
    "agqa": {},
    "nextqa": dict(
        frame_as_patch_candidate=True,
        question_tokens_in_sequence=False,
        segment_normalization="time",
        fusion_pooling="mean",
        answer_pooling="mean_unmasked",
        gumbel_temperature=100.0,
        choice_template=QUESTION_SEP_CHOICE,  # each candidate read as "question [SEP] choice"
    ),
    "star": dict(use_patch_selection=False, choice_template=QUESTION_SEP_CHOICE),
}

# The pretrained text encoders of each reference (both towers), whose tokenizers read its questions and answers.
REFERENCE_TOKENIZERS = {"agqa": "bert-base-uncased", "nextqa": "bert-base-uncased", "star": "distilbert-base-uncased"}

# The questions each reference answers.
REFERENCE_TASKS = {"agqa": "open-ended", "nextqa": "multiple-choice", "star": "multiple-choice"}

__all__ = [
    "QUESTION_SEP_CHOICE",
    "REFERENCE_OPTIONS",
    "REFERENCE_SIZES",
    "REFERENCE_TASKS",
    "REFERENCE_TOKENIZERS",
    "VARIANT_NAMES",
]
