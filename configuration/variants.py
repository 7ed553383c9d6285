"""The model variants: the `MistConfig` settings of the original code's three models (AGQA, NExT-QA, STAR) and
of this project's long-video settings (EgoSchema, ActivityNet-QA).

One table, read by the training presets (`configuration/presets.py`: a variant plus training arguments) and by
the checkpoint converter (`modeling_mist/convert_original_checkpoint.py`: its defaults for what no tensor
carries). Plain dicts only: `mist <command> --help` reads the presets without importing torch.
docs/variants.md explains every switch.
"""

from dataclasses import dataclass, field

# The sizes no checkpoint tensor carries (the converter's flags); every other width and depth it reads from shapes.
UNTENSORED_SIZES = ("num_frames", "num_segments", "grid_size", "num_selected_segments", "num_selected_patches")

# How the NExT-QA and STAR references write a multiple-choice candidate for the answer encoder.
QUESTION_SEP_CHOICE = "{question} {sep} {choice}"


@dataclass(frozen=True)
class Variant:
    """The settings that make one model.

    Args:
        name: the `--preset` and `--variant` value.
        title: the dataset's name as its paper writes it.
        task: `"open-ended"` or `"multiple-choice"` (`MistConfig.task`).
        text_encoder: the pretrained encoder of both text towers, whose tokenizer reads the questions and answers.
        sizes: `UNTENSORED_SIZES` (those left out are `MistConfig`'s defaults, or unused by the variant).
        options: the switches that make the variant (docs/variants.md, "Options"); `MistConfig`'s defaults are
            AGQA's.
        model: the widths, depths, dropout and lengths of a fresh model (a checkpoint carries its own).
        reference: a model of the original code, whose checkpoints the converter reads.
    """

    name: str
    title: str
    task: str
    text_encoder: str
    sizes: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    reference: bool = False

    @property
    def config_kwargs(self) -> dict:
        """The `MistConfig` keyword arguments of a fresh model of this variant (the task apart)."""
        return {**self.model, **self.sizes, **self.options}


# The paper's model sizes (MistConfig's defaults): reference shells/*.sh and model/mist*.py. Like all three
# reference models, the ISTA position tables stay sinusoidal (`requires_grad=False` in model/mist.py).
PAPER_MODEL = dict(
    hidden_size=512,
    intermediate_size=1024,
    num_attention_heads=8,
    num_hidden_layers=2,
    num_ista_layers=2,
    dropout=0.3,
    attention_dropout=0.3,
    max_question_length=30,
    max_answer_length=38,
    freeze_position_embeddings=True,
)

# Reference `model/mist.py` with `shells/agqa_v2_mist.sh`.
AGQA = Variant(
    name="agqa",
    title="AGQA",
    task="open-ended",
    text_encoder="bert-base-uncased",
    sizes=dict(num_frames=32, num_segments=8, grid_size=4, num_selected_segments=2, num_selected_patches=12),
    model=PAPER_MODEL,
    reference=True,
)

# Reference `model/mist_nextqa.py` with `shells/nextqa_mist.sh` (docs/variants.md, "NExT-QA"): 32 one-frame
# segments, keep 1 frame and 16 of its 17 candidates (16 patches + the raw frame), one ISTA layer of 2 blocks,
# a 2-block temporal encoder over every patch, no question tokens in the ISTA sequence, segment features
# normalised over time, mean fusion, Gumbel temperature 100, answers "question [SEP] choice" (one sequence)
# mean-pooled over every position.
NEXTQA = Variant(
    name="nextqa",
    title="NExT-QA",
    task="multiple-choice",
    text_encoder="bert-base-uncased",
    sizes=dict(num_frames=32, num_segments=32, grid_size=4, num_selected_segments=1, num_selected_patches=16),
    options=dict(
        frame_as_patch_candidate=True,
        question_tokens_in_sequence=False,
        segment_normalization="time",
        fusion_pooling="mean",
        answer_pooling="mean_unmasked",
        gumbel_temperature=100.0,
        choice_template=QUESTION_SEP_CHOICE,  # each candidate read as "question [SEP] choice"
    ),
    model={**PAPER_MODEL, "num_ista_layers": 1, "num_temporal_layers": 2},
    reference=True,
)

# Reference `model/mist_star.py` with `shells/star_mist.sh` (docs/variants.md, "STAR"): the AGQA model with one
# ISTA layer of 2 blocks keeping 2 of 8 segments and every patch of their frames (no patch selection, so no
# top-j), DistilBERT text encoders, answers "question [SEP] choice" read at [CLS].
STAR = Variant(
    name="star",
    title="STAR",
    task="multiple-choice",
    text_encoder="distilbert-base-uncased",
    sizes=dict(num_frames=32, num_segments=8, grid_size=4, num_selected_segments=2),
    options=dict(use_patch_selection=False, choice_template=QUESTION_SEP_CHOICE),
    model={**PAPER_MODEL, "num_ista_layers": 1},
    reference=True,
)

# EgoSchema (3-minute egocentric clips, 5 choices). This project's settings, not the paper's (MIST was not run
# on it): the NExT-QA model over 64 one-frame segments instead of 32 (a frame every 2.8 s of a 3-minute clip),
# keeping 2 of them instead of 1.
EGOSCHEMA = Variant(
    name="egoschema",
    title="EgoSchema",
    task="multiple-choice",
    text_encoder=NEXTQA.text_encoder,
    sizes={**NEXTQA.sizes, "num_frames": 64, "num_segments": 64, "num_selected_segments": 2},
    options=NEXTQA.options,
    model=NEXTQA.model,
)

# ActivityNet-QA (open-ended, videos of about 3 minutes). This project's settings, not the paper's: the AGQA
# model with 64 frames in 16 segments of 4 (a frame every ~2.8 s of a 3-minute video), 2 segments kept.
ACTIVITYNETQA = Variant(
    name="activitynetqa",
    title="ActivityNet-QA",
    task="open-ended",
    text_encoder=AGQA.text_encoder,
    sizes={**AGQA.sizes, "num_frames": 64, "num_segments": 16, "num_selected_segments": 2},
    options=AGQA.options,
    model=AGQA.model,
)

VARIANTS = {variant.name: variant for variant in (AGQA, NEXTQA, STAR, EGOSCHEMA, ACTIVITYNETQA)}
# The models of the original code, whose checkpoints `convert_original_checkpoint` reads.
REFERENCE_VARIANTS = {name: variant for name, variant in VARIANTS.items() if variant.reference}

__all__ = [
    "ACTIVITYNETQA",
    "AGQA",
    "EGOSCHEMA",
    "NEXTQA",
    "PAPER_MODEL",
    "QUESTION_SEP_CHOICE",
    "REFERENCE_VARIANTS",
    "STAR",
    "UNTENSORED_SIZES",
    "VARIANTS",
    "Variant",
]
