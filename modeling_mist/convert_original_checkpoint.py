"""Convert a checkpoint of the original MIST code (github showlab/mist, AGQA variant) to a transformers folder.

    python -m modeling_mist.convert_original_checkpoint CHECKPOINT OUTPUT_DIR [--num-attention-heads N] ...

Every size that the tensors carry is read from their shapes; the few that no tensor carries
(frames, segments, grid, top-k, top-j) default to the paper's AGQA values and have flags.
"""

import argparse
import pickle
import re
import sys
from pathlib import Path

import torch
from transformers import BertConfig

from .configuration_mist import MistConfig
from .modeling_mist import MistForVideoQuestionAnswering

# Reference module prefixes that the AGQA forward never reads (CLIP belongs to the processor here).
UNUSED_PREFIXES = (
    "position.",
    "frame_position_embedding.",
    "question_position_embedding.",
    "token_type_embedding.",
    "crossmodal_matching.",
    "ttrans.",
    "clip.",
    "bert.bert.pooler.",
    "amodel.bert.bert.pooler.",
)

# (reference pattern, this project's name); applied in order, first match wins.
RENAMES = [
    (r"^encode_vid\.bbox_conv\.(\d+)\.", r"mist.patch_encoder.box_encoder.\1."),
    (r"^encode_vid\.tohid\.0\.", "mist.patch_encoder.projection."),
    (r"^bert\.bert\.", "mist.question_encoder."),
    (r"^amodel\.bert\.bert\.", "answer_encoder."),
    (r"^amodel\.linear_text\.", "answer_projection."),
    (r"^vqproj\.1\.", "mist.fusion_proj."),
    (r"^ISTA\.(\d+)\.seg_selector\.linear_Q\.", r"mist.ista_layers.\1.segment_selector.query_proj."),
    (r"^ISTA\.(\d+)\.seg_selector\.norm_Q\.", r"mist.ista_layers.\1.segment_selector.query_norm."),
    (r"^ISTA\.(\d+)\.seg_selector\.linear_K\.", r"mist.ista_layers.\1.segment_selector.key_proj."),
    (r"^ISTA\.(\d+)\.seg_selector\.norm_K\.", r"mist.ista_layers.\1.segment_selector.key_norm."),
    (r"^ISTA\.(\d+)\.reg_selector\.linear_Q\.", r"mist.ista_layers.\1.patch_selector.query_proj."),
    (r"^ISTA\.(\d+)\.reg_selector\.norm_Q\.", r"mist.ista_layers.\1.patch_selector.query_norm."),
    (r"^ISTA\.(\d+)\.reg_selector\.linear_K\.", r"mist.ista_layers.\1.patch_selector.key_proj."),
    (r"^ISTA\.(\d+)\.reg_selector\.norm_K\.", r"mist.ista_layers.\1.patch_selector.key_norm."),
    (r"^ISTA\.(\d+)\.linear_question\.", r"mist.ista_layers.\1.question_projection.dense."),
    (r"^ISTA\.(\d+)\.norm_question\.", r"mist.ista_layers.\1.question_projection.norm."),
    (r"^ISTA\.(\d+)\.linear_video\.", r"mist.ista_layers.\1.segment_projection.dense."),
    (r"^ISTA\.(\d+)\.norm_video\.", r"mist.ista_layers.\1.segment_projection.norm."),
    (r"^ISTA\.(\d+)\.linear_patch\.", r"mist.ista_layers.\1.patch_projection.dense."),
    (r"^ISTA\.(\d+)\.norm_patch\.", r"mist.ista_layers.\1.patch_projection.norm."),
    (r"^ISTA\.(\d+)\.position\.position_embeddings\.", r"mist.ista_layers.\1.embeddings.position_embeddings."),
    (r"^ISTA\.(\d+)\.position\.modality_embedding\.", r"mist.ista_layers.\1.embeddings.modality_embeddings."),
    (r"^ISTA\.(\d+)\.position\.LayerNorm\.", r"mist.ista_layers.\1.embeddings.norm."),
    (r"^ISTA\.(\d+)\.mmt\.layer\.(\d+)\.attention\.q_lin\.", r"mist.ista_layers.\1.layers.\2.attention.q_proj."),
    (r"^ISTA\.(\d+)\.mmt\.layer\.(\d+)\.attention\.k_lin\.", r"mist.ista_layers.\1.layers.\2.attention.k_proj."),
    (r"^ISTA\.(\d+)\.mmt\.layer\.(\d+)\.attention\.v_lin\.", r"mist.ista_layers.\1.layers.\2.attention.v_proj."),
    (r"^ISTA\.(\d+)\.mmt\.layer\.(\d+)\.attention\.out_lin\.", r"mist.ista_layers.\1.layers.\2.attention.o_proj."),
    (r"^ISTA\.(\d+)\.mmt\.layer\.(\d+)\.sa_layer_norm\.", r"mist.ista_layers.\1.layers.\2.attention_norm."),
    (r"^ISTA\.(\d+)\.mmt\.layer\.(\d+)\.ffn\.lin1\.", r"mist.ista_layers.\1.layers.\2.feed_forward.up_proj."),
    (r"^ISTA\.(\d+)\.mmt\.layer\.(\d+)\.ffn\.lin2\.", r"mist.ista_layers.\1.layers.\2.feed_forward.down_proj."),
    (r"^ISTA\.(\d+)\.mmt\.layer\.(\d+)\.output_layer_norm\.", r"mist.ista_layers.\1.layers.\2.output_norm."),
]

# Keys every AGQA-variant checkpoint has; their absence means the file is not a MIST state dict.
REQUIRED_KEYS = (
    "encode_vid.bbox_conv.0.weight",
    "encode_vid.tohid.0.weight",
    "ISTA.0.position.position_embeddings.weight",
    "ISTA.0.mmt.layer.0.ffn.lin1.weight",
    "ISTA.0.seg_selector.linear_Q.weight",
    "bert.bert.embeddings.word_embeddings.weight",
    "bert.bert.embeddings.position_embeddings.weight",
    "bert.bert.embeddings.token_type_embeddings.weight",
    "bert.bert.encoder.layer.0.intermediate.dense.weight",
    "amodel.linear_text.weight",
    "vqproj.1.weight",
)


class NotAMistCheckpointError(ValueError):
    pass


def load_reference_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors only (`weights_only=True`: nothing else is unpickled), without the `module.` DataParallel prefix."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise NotAMistCheckpointError(f"{path} is not a tensors-only PyTorch checkpoint: {error}") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NotAMistCheckpointError(f"{path} does not hold a state dict of tensors")
    return {key.removeprefix("module."): value for key, value in state.items()}


def count_indexed(state: dict, pattern: str) -> int:
    """Number of distinct integers captured by `pattern` among the keys."""
    regex = re.compile(pattern)
    return len({match.group(1) for key in state if (match := regex.match(key))})


def infer_config(
    state: dict[str, torch.Tensor],
    num_attention_heads: int | None = None,
    text_num_attention_heads: int | None = None,
    num_frames: int = 32,
    num_segments: int = 8,
    grid_size: int = 4,
    num_selected_segments: int = 2,
    num_selected_patches: int = 12,
    **config_overrides,
) -> MistConfig:
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise NotAMistCheckpointError(
            "not a MIST (AGQA variant) state dict: missing expected keys " + ", ".join(missing)
        )
    box_hidden_size, hidden_size = state["encode_vid.bbox_conv.0.weight"].shape[0], state["encode_vid.tohid.0.weight"].shape[0]
    clip_hidden_size = state["encode_vid.tohid.0.weight"].shape[1] - box_hidden_size
    word_embeddings = state["bert.bert.embeddings.word_embeddings.weight"]
    text_hidden_size = word_embeddings.shape[1]
    text_config = BertConfig(
        vocab_size=word_embeddings.shape[0],
        hidden_size=text_hidden_size,
        num_hidden_layers=count_indexed(state, r"^bert\.bert\.encoder\.layer\.(\d+)\."),
        num_attention_heads=text_num_attention_heads or max(text_hidden_size // 64, 1),
        intermediate_size=state["bert.bert.encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state["bert.bert.embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state["bert.bert.embeddings.token_type_embeddings.weight"].shape[0],
    )
    frames_per_segment = num_frames // num_segments
    video_tokens = num_segments + num_selected_segments * frames_per_segment * num_selected_patches
    sequence_length = state["ISTA.0.position.position_embeddings.weight"].shape[0]
    max_question_length = sequence_length - video_tokens
    if max_question_length < 1:
        raise ValueError(
            f"the ISTA position table has {sequence_length} rows, fewer than the {video_tokens} video tokens of "
            f"num_segments={num_segments}, num_selected_segments={num_selected_segments}, "
            f"num_frames={num_frames}, num_selected_patches={num_selected_patches}; pass the sizes the checkpoint was trained with"
        )
    return MistConfig(
        text_config=text_config,
        num_frames=num_frames,
        num_segments=num_segments,
        grid_size=grid_size,
        clip_hidden_size=clip_hidden_size,
        hidden_size=hidden_size,
        box_hidden_size=box_hidden_size,
        num_ista_layers=count_indexed(state, r"^ISTA\.(\d+)\."),
        num_hidden_layers=count_indexed(state, r"^ISTA\.0\.mmt\.layer\.(\d+)\."),
        num_attention_heads=num_attention_heads or max(hidden_size // 64, 1),
        intermediate_size=state["ISTA.0.mmt.layer.0.ffn.lin1.weight"].shape[0],
        num_selected_segments=num_selected_segments,
        num_selected_patches=num_selected_patches,
        max_question_length=max_question_length,
        **config_overrides,
    )


def rename_key(key: str) -> str | None:
    for pattern, replacement in RENAMES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return None


def convert_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Returns the renamed tensors and the reference keys that were dropped (unused by the AGQA forward)."""
    converted, dropped = {}, []
    for key, tensor in state.items():
        new_key = None if key.startswith(UNUSED_PREFIXES) else rename_key(key)
        if new_key is None:
            dropped.append(key)
        else:
            converted[new_key] = tensor
    return converted, dropped


def convert_checkpoint(checkpoint: str | Path, output_dir: str | Path | None = None, **config_kwargs):
    """Build the converted model; save it to `output_dir` when given. Returns `(model, dropped_keys)`."""
    state = load_reference_state_dict(checkpoint)
    config = infer_config(state, **config_kwargs)
    converted, dropped = convert_state_dict(state)
    model = MistForVideoQuestionAnswering(config)
    expected = model.state_dict()
    unexpected = sorted(set(converted) - set(expected))
    if unexpected:
        raise NotAMistCheckpointError(f"checkpoint tensors with no place in the model: {', '.join(unexpected)}")
    missing = sorted(key for key in set(expected) - set(converted) if not key.endswith("position_ids"))
    if missing:
        raise NotAMistCheckpointError(f"checkpoint lacks tensors the model needs: {', '.join(missing)}")
    for key, tensor in converted.items():
        if tensor.shape != expected[key].shape:
            raise NotAMistCheckpointError(
                f"{key}: checkpoint shape {tuple(tensor.shape)} does not fit the inferred model {tuple(expected[key].shape)}"
            )
    model.load_state_dict(converted, strict=False)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
    return model, dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="state dict saved by the original training script (.pth)")
    parser.add_argument("output_dir", help="folder to write the transformers model to")
    parser.add_argument("--num-attention-heads", type=int, default=None, help="ISTA heads (default: hidden_size / 64)")
    parser.add_argument("--text-num-attention-heads", type=int, default=None, help="text encoder heads (default: hidden / 64)")
    parser.add_argument("--num-frames", type=int, default=32)
    parser.add_argument("--num-segments", type=int, default=8)
    parser.add_argument("--grid-size", type=int, default=4)
    parser.add_argument("--num-selected-segments", type=int, default=2, help="top-k segments")
    parser.add_argument("--num-selected-patches", type=int, default=12, help="top-j patches")
    args = parser.parse_args(argv)
    try:
        model, dropped = convert_checkpoint(
            args.checkpoint,
            args.output_dir,
            num_attention_heads=args.num_attention_heads,
            text_num_attention_heads=args.text_num_attention_heads,
            num_frames=args.num_frames,
            num_segments=args.num_segments,
            grid_size=args.grid_size,
            num_selected_segments=args.num_selected_segments,
            num_selected_patches=args.num_selected_patches,
        )
    except (NotAMistCheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    unused = sorted({prefix.rstrip(".") for prefix in UNUSED_PREFIXES for key in dropped if key.startswith(prefix)})
    unrecognised = [key for key in dropped if not key.startswith(UNUSED_PREFIXES)]
    print(f"dropped {len(dropped) - len(unrecognised)} tensors the AGQA forward never uses: {', '.join(unused)}")
    if unrecognised:
        print(f"dropped {len(unrecognised)} unrecognised tensors: {', '.join(unrecognised)}")
    config = model.config
    print(
        f"wrote {args.output_dir}: {config.num_ista_layers} ISTA layers x {config.num_hidden_layers} blocks, "
        f"hidden {config.hidden_size}, FFN {config.intermediate_size}, Q={config.max_question_length}, "
        f"text encoder {config.text_config.num_hidden_layers} layers x {config.text_config.hidden_size}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
