"""Tiny MIST sizes and random inputs shared by the model tests, and where the original code's outputs are."""

import os
from pathlib import Path

import pytest
import torch

from modeling_mist import MistConfig

BATCH, QUESTION_LENGTH, NUM_ANSWERS, ANSWER_LENGTH, VOCAB = 3, 5, 6, 4, 99

# The original code's reference outputs: MIST_REFERENCE_OUTPUTS, else this team's folder beside the clone.
REFERENCE_OUTPUTS_VARIABLE = "MIST_REFERENCE_OUTPUTS"
TEAM_REFERENCE_OUTPUTS = Path(__file__).resolve().parents[3] / "shared" / "fixtures"


def reference_outputs(variant: str) -> Path:
    """The folder of the original code's outputs for `variant` (checkpoint.pth, inputs.pt, expected.pt), or skip."""
    given = os.environ.get(REFERENCE_OUTPUTS_VARIABLE)
    root = Path(given) if given else TEAM_REFERENCE_OUTPUTS
    folder = root / f"original-{variant}"
    if all((folder / name).is_file() for name in ("checkpoint.pth", "inputs.pt", "expected.pt")):
        return folder
    if given:  # asked for, so a wrong path is an error, not a silent skip
        raise FileNotFoundError(
            f"{REFERENCE_OUTPUTS_VARIABLE}={given}: no checkpoint.pth, inputs.pt and expected.pt in {folder}"
        )
    pytest.skip(
        f"needs the original code's reference outputs for {variant}: set {REFERENCE_OUTPUTS_VARIABLE} to a folder "
        f"holding original-{variant}/ (CONTRIBUTING.md, 'Reference outputs', says how to make them)"
    )


def tiny_config(**overrides) -> MistConfig:
    sizes = dict(
        text_config={
            "vocab_size": VOCAB,
            "hidden_size": 24,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "max_position_embeddings": 32,
        },
        num_frames=8,
        num_segments=4,
        grid_size=2,
        clip_hidden_size=16,
        hidden_size=32,
        box_hidden_size=8,
        num_ista_layers=2,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        num_selected_segments=2,
        num_selected_patches=2,
        max_question_length=7,
    )
    sizes.update(overrides)
    return MistConfig(**sizes)


def random_inputs(config: MistConfig, batch_size: int = BATCH, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    frames, patches, width = config.num_frames, config.num_patches, config.clip_hidden_size
    attention_mask = torch.ones(batch_size, QUESTION_LENGTH, dtype=torch.long)
    attention_mask[0, 3:] = 0
    input_ids = torch.randint(1, VOCAB, (batch_size, QUESTION_LENGTH), generator=generator) * attention_mask
    return {
        "frame_features": torch.randn(batch_size, frames, width, generator=generator),
        "patch_features": torch.randn(batch_size, frames, patches, width, generator=generator),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "question_clip_embeds": torch.randn(batch_size, width, generator=generator),
        "answer_input_ids": torch.randint(1, VOCAB, (NUM_ANSWERS, ANSWER_LENGTH), generator=generator),
        "answer_attention_mask": torch.ones(NUM_ANSWERS, ANSWER_LENGTH, dtype=torch.long),
    }


@pytest.fixture
def config() -> MistConfig:
    return tiny_config()


@pytest.fixture
def inputs(config) -> dict:
    return random_inputs(config)


DISTILBERT_TEXT_CONFIG = {
    "model_type": "distilbert",
    "vocab_size": VOCAB,
    "dim": 24,
    "n_layers": 1,
    "n_heads": 4,
    "hidden_dim": 37,
    "max_position_embeddings": 32,
}


def nextqa_config(**overrides) -> MistConfig:
    """Tiny NExT-QA variant: one-frame segments, temporal encoder, the frame as candidate P + 1, no question tokens."""
    sizes = dict(
        num_frames=8,
        num_segments=8,
        clip_hidden_size=32,
        num_ista_layers=1,
        num_temporal_layers=2,
        num_selected_segments=1,
        num_selected_patches=4,  # of 4 patches + the frame
        frame_as_patch_candidate=True,
        question_tokens_in_sequence=False,
        segment_normalization="time",
        fusion_pooling="mean",
        answer_pooling="mean_unmasked",
        gumbel_temperature=100.0,
    )
    sizes.update(overrides)
    return tiny_config(**sizes)


def star_config(**overrides) -> MistConfig:
    """Tiny STAR variant: DistilBERT text encoders, one ISTA layer, every patch of the kept frames."""
    sizes = dict(text_config=DISTILBERT_TEXT_CONFIG, num_ista_layers=1, use_patch_selection=False)
    sizes.update(overrides)
    return tiny_config(**sizes)
