"""Convert a checkpoint of the original MIST code (github showlab/mist) to a transformers folder.

    python -m modeling_mist.convert_original_checkpoint CHECKPOINT OUTPUT_DIR [--variant agqa|nextqa|star] ...

The three models of the original code are recognised from the keys (`--variant` forces one):
AGQA (`model/mist.py`), NExT-QA (`model/mist_nextqa.py`: a temporal encoder `ttrans.*` and no top-level
`position.*`) and STAR (`model/mist_star.py`: no patch selector and DistilBERT text encoders). Every size that
the tensors carry is read from their shapes, including the text encoders (BERT or DistilBERT); the few that no
tensor carries (frames, segments, grid, top-k, top-j) default to the variant's reference values and have flags.
Position tables are cut to the rows the forward uses, and what the converted model has no use for is listed.
"""

import argparse
import pickle
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import BertConfig, DistilBertConfig, PreTrainedConfig

from configuration.variants import REFERENCE_VARIANTS, UNTENSORED_SIZES

from .configuration_mist import MistConfig
from .modeling_mist import MistForVideoQuestionAnswering

# The variants' settings (sizes no tensor carries, switches, task, text encoders): one table with the presets.
VARIANT_NAMES = {name: variant.title for name, variant in REFERENCE_VARIANTS.items()}
# The tokenizers the original code reads its questions and answers with (the text encoders' own vocabularies).
REFERENCE_TOKENIZERS = {name: variant.text_encoder for name, variant in REFERENCE_VARIANTS.items()}

# (reference key pattern, what it is) for tensors the converted model has no place for, per variant.
COMMON_UNUSED = [
    (r"clip\.", "clip"),
    (r"bert\.bert\.pooler\.", "bert.bert.pooler"),
    (r"amodel\.bert\.bert\.pooler\.", "amodel.bert.bert.pooler"),
]
AGQA_STAR_UNUSED = [
    (r"position\.", "position"),
    (r"frame_position_embedding\.", "frame_position_embedding"),
    (r"question_position_embedding\.", "question_position_embedding"),
    (r"token_type_embedding\.", "token_type_embedding"),
    (r"crossmodal_matching\.", "crossmodal_matching"),
]
UNUSED = {
    "agqa": COMMON_UNUSED + AGQA_STAR_UNUSED + [(r"ttrans\.", "ttrans")],
    "nextqa": COMMON_UNUSED
    + [
        # The question BERT runs in the reference, but its output never reaches the answer.
        (r"bert\.bert\.", "bert.bert (question encoder, output unused)"),
        (r"(linear|norm)_question\.", "linear_question/norm_question"),
        (r"ISTA\.\d+\.(linear|norm)_question\.", "ISTA.*.linear_question/norm_question"),
        (r"ISTA\.\d+\.position\.modality_embedding\.", "ISTA.*.position.modality_embedding"),
    ],
    "star": COMMON_UNUSED + AGQA_STAR_UNUSED,
}

# Inside a transformer block (ISTA `mmt` and the temporal `ttrans` share the layout).
BLOCK_RENAMES = [
    ("attention.q_lin", "attention.q_proj"),
    ("attention.k_lin", "attention.k_proj"),
    ("attention.v_lin", "attention.v_proj"),
    ("attention.out_lin", "attention.o_proj"),
    ("sa_layer_norm", "attention_norm"),
    ("ffn.lin1", "feed_forward.up_proj"),
    ("ffn.lin2", "feed_forward.down_proj"),
    ("output_layer_norm", "output_norm"),
]
SELECTOR_RENAMES = [
    ("linear_Q", "query_proj"),
    ("norm_Q", "query_norm"),
    ("linear_K", "key_proj"),
    ("norm_K", "key_norm"),
]
# (reference pattern, this project's name); applied in order, first match wins.
RENAMES = [
    (r"^encode_vid\.bbox_conv\.(\d+)\.", r"mist.patch_encoder.box_encoder.\1."),
    (r"^encode_vid\.tohid\.0\.", "mist.patch_encoder.projection."),
    (r"^bert\.bert\.", "mist.question_encoder."),
    (r"^amodel\.bert\.bert\.", "answer_encoder."),
    (r"^amodel\.linear_text\.", "answer_projection."),
    (r"^vqproj\.1\.", "mist.fusion_proj."),
    *[
        (rf"^ISTA\.(\d+)\.seg_selector\.{a}\.", rf"mist.ista_layers.\1.segment_selector.{b}.")
        for a, b in SELECTOR_RENAMES
    ],
    *[
        (rf"^ISTA\.(\d+)\.reg_selector\.{a}\.", rf"mist.ista_layers.\1.patch_selector.{b}.")
        for a, b in SELECTOR_RENAMES
    ],
    (r"^ISTA\.(\d+)\.linear_question\.", r"mist.ista_layers.\1.question_projection.dense."),
    (r"^ISTA\.(\d+)\.norm_question\.", r"mist.ista_layers.\1.question_projection.norm."),
    (r"^ISTA\.(\d+)\.linear_video\.", r"mist.ista_layers.\1.segment_projection.dense."),
    (r"^ISTA\.(\d+)\.norm_video\.", r"mist.ista_layers.\1.segment_projection.norm."),
    (r"^ISTA\.(\d+)\.linear_patch\.", r"mist.ista_layers.\1.patch_projection.dense."),
    (r"^ISTA\.(\d+)\.norm_patch\.", r"mist.ista_layers.\1.patch_projection.norm."),
    (r"^ISTA\.(\d+)\.position\.position_embeddings\.", r"mist.ista_layers.\1.embeddings.position_embeddings."),
    (r"^ISTA\.(\d+)\.position\.modality_embedding\.", r"mist.ista_layers.\1.embeddings.modality_embeddings."),
    (r"^ISTA\.(\d+)\.position\.LayerNorm\.", r"mist.ista_layers.\1.embeddings.norm."),
    *[
        (rf"^ISTA\.(\d+)\.mmt\.layer\.(\d+)\.{re.escape(a)}\.", rf"mist.ista_layers.\1.layers.\2.{b}.")
        for a, b in BLOCK_RENAMES
    ],
    *[
        (rf"^ttrans\.layer\.(\d+)\.{re.escape(a)}\.", rf"mist.temporal_encoder.layers.\1.{b}.")
        for a, b in BLOCK_RENAMES
    ],
]

# Keys every checkpoint of a variant has; their absence means the file is not such a MIST state dict.
COMMON_KEYS = (
    "encode_vid.bbox_conv.0.weight",
    "encode_vid.tohid.0.weight",
    "ISTA.0.position.position_embeddings.weight",
    "ISTA.0.mmt.layer.0.ffn.lin1.weight",
    "ISTA.0.seg_selector.linear_Q.weight",
    "bert.bert.embeddings.word_embeddings.weight",
    "bert.bert.embeddings.position_embeddings.weight",
)
BERT_KEYS = ("bert.bert.embeddings.token_type_embeddings.weight", "bert.bert.encoder.layer.0.intermediate.dense.weight")
DISTILBERT_KEYS = ("bert.bert.transformer.layer.0.ffn.lin1.weight",)
HEAD_KEYS = ("amodel.linear_text.weight", "vqproj.1.weight")
REQUIRED_KEYS = {
    "agqa": COMMON_KEYS + BERT_KEYS + HEAD_KEYS,
    "nextqa": COMMON_KEYS + ("ttrans.layer.0.ffn.lin1.weight", "ISTA.0.reg_selector.linear_Q.weight") + HEAD_KEYS,
    "star": COMMON_KEYS + HEAD_KEYS,
}


class NotAMistCheckpointError(ValueError):
    pass


@dataclass
class Conversion:
    """The converted model and what happened to the reference tensors on the way."""

    model: MistForVideoQuestionAnswering
    variant: str
    dropped: dict[str, list[str]] = field(default_factory=dict)  # what it is -> reference keys
    unrecognised: list[str] = field(default_factory=list)  # reference keys no rule knows
    sliced: list[str] = field(default_factory=list)  # position tables cut to the rows the forward uses


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


def detect_variant(state: dict[str, torch.Tensor]) -> str:
    """`nextqa`: a temporal encoder and no top-level position table; `star`: no patch selector and DistilBERT
    text encoders; `agqa` otherwise."""
    prefixes = {key.split(".")[0] for key in state}
    if "ttrans" in prefixes and "position" not in prefixes:
        return "nextqa"
    distilbert = any(key.startswith("bert.bert.transformer.layer.") for key in state)
    if distilbert and not any(".reg_selector." in key for key in state):
        return "star"
    return "agqa"


def infer_text_config(state: dict[str, torch.Tensor], num_attention_heads: int | None = None) -> PreTrainedConfig:
    """BERT or DistilBERT config of the reference's text encoders (`bert.bert.*`, the same as `amodel.bert.bert.*`)."""
    vocab_size, hidden_size = state["bert.bert.embeddings.word_embeddings.weight"].shape
    heads = num_attention_heads or max(hidden_size // 64, 1)
    max_positions = state["bert.bert.embeddings.position_embeddings.weight"].shape[0]
    if "bert.bert.transformer.layer.0.ffn.lin1.weight" in state:
        return DistilBertConfig(
            vocab_size=vocab_size,
            dim=hidden_size,
            n_layers=count_indexed(state, r"^bert\.bert\.transformer\.layer\.(\d+)\."),
            n_heads=heads,
            hidden_dim=state["bert.bert.transformer.layer.0.ffn.lin1.weight"].shape[0],
            max_position_embeddings=max_positions,
        )
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=count_indexed(state, r"^bert\.bert\.encoder\.layer\.(\d+)\."),
        num_attention_heads=heads,
        intermediate_size=state["bert.bert.encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=max_positions,
        type_vocab_size=state["bert.bert.embeddings.token_type_embeddings.weight"].shape[0],
    )


def check_required_keys(state: dict[str, torch.Tensor], variant: str):
    required = REQUIRED_KEYS[variant]
    if variant != "agqa":  # the AGQA list already names its BERT keys
        distilbert = "bert.bert.transformer.layer.0.ffn.lin1.weight" in state
        required = required + (DISTILBERT_KEYS if distilbert else BERT_KEYS)
    missing = [key for key in required if key not in state]
    if missing:
        raise NotAMistCheckpointError(
            f"not a MIST ({VARIANT_NAMES[variant]} variant) state dict: missing expected keys " + ", ".join(missing)
        )


def reference_table_rows_beyond_question(variant: str, sizes: dict, video_tokens: int) -> int:
    """Rows the reference's ISTA position table has beyond the Q question rows.

    AGQA and NExT-QA size it for their own video tokens; STAR's is sized for "2 segments of F/2 frames, keep 1,
    every patch" (mist_star.py:466-470; 258 rows at the defaults) but its forward uses fewer rows.
    """
    if variant == "star":
        return 2 + sizes["grid_size"] ** 2 * sizes["num_frames"] // 2
    return video_tokens


def infer_config(
    state: dict[str, torch.Tensor],
    variant: str | None = None,
    num_attention_heads: int | None = None,
    text_num_attention_heads: int | None = None,
    max_question_length: int | None = None,
    freeze_position_embeddings: bool = True,
    **overrides,
) -> MistConfig:
    """The `MistConfig` of a reference state dict; `overrides` may set sizes no tensor carries (`num_frames`,
    `num_segments`, `grid_size`, `num_selected_segments`, `num_selected_patches`; None = the variant's) and
    any other config field."""
    variant = variant or detect_variant(state)
    check_required_keys(state, variant)
    settings = REFERENCE_VARIANTS[variant]
    sizes = {
        name: overrides.pop(name, None) or settings.sizes.get(name, getattr(MistConfig, name))
        for name in UNTENSORED_SIZES
    }
    options = {**settings.options, "task": settings.task, **overrides}

    box_hidden_size, hidden_size = (
        state["encode_vid.bbox_conv.0.weight"].shape[0],
        state["encode_vid.tohid.0.weight"].shape[0],
    )
    clip_hidden_size = state["encode_vid.tohid.0.weight"].shape[1] - box_hidden_size

    # Q is not stored: it is what the position table has beyond the video tokens.
    frames_per_segment = sizes["num_frames"] // sizes["num_segments"]
    patch_candidates = sizes["grid_size"] ** 2 + int(options.get("frame_as_patch_candidate", False))
    per_frame = sizes["num_selected_patches"] if options.get("use_patch_selection", True) else patch_candidates
    video_tokens = sizes["num_segments"] + sizes["num_selected_segments"] * frames_per_segment * per_frame
    rows = state["ISTA.0.position.position_embeddings.weight"].shape[0]
    hint = "pass the sizes the checkpoint was trained with (or --max-question-length)"
    sizes_text = ", ".join(f"{name}={value}" for name, value in sizes.items())
    if max_question_length is None:
        beyond_question = reference_table_rows_beyond_question(variant, sizes, video_tokens)
        max_question_length = rows - beyond_question
        if max_question_length < 1:
            raise ValueError(
                f"the ISTA position table has {rows} rows, but the {VARIANT_NAMES[variant]} reference with "
                f"{sizes_text} has {beyond_question} rows beyond the question positions; {hint}"
            )
    used_rows = video_tokens + (max_question_length if options.get("question_tokens_in_sequence", True) else 0)
    if rows < used_rows:
        raise ValueError(
            f"the ISTA position table has {rows} rows, too few for the {used_rows} positions of the "
            f"{VARIANT_NAMES[variant]} variant with {sizes_text} and max_question_length={max_question_length}; {hint}"
        )
    return MistConfig(
        text_config=infer_text_config(state, text_num_attention_heads),
        clip_hidden_size=clip_hidden_size,
        hidden_size=hidden_size,
        box_hidden_size=box_hidden_size,
        num_ista_layers=count_indexed(state, r"^ISTA\.(\d+)\."),
        num_hidden_layers=count_indexed(state, r"^ISTA\.0\.mmt\.layer\.(\d+)\."),
        num_temporal_layers=count_indexed(state, r"^ttrans\.layer\.(\d+)\.") if variant == "nextqa" else 0,
        num_attention_heads=num_attention_heads or max(hidden_size // 64, 1),
        intermediate_size=state["ISTA.0.mmt.layer.0.ffn.lin1.weight"].shape[0],
        max_question_length=max_question_length,
        freeze_position_embeddings=freeze_position_embeddings,
        **sizes,
        **options,
    )


def rename_key(key: str) -> str | None:
    for pattern, replacement in RENAMES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return None


def unused_label(key: str, variant: str) -> str | None:
    """What an unused reference tensor is, or None when the converted model uses it."""
    return next((label for pattern, label in UNUSED[variant] if re.match(pattern, key)), None)


def convert_state_dict(
    state: dict[str, torch.Tensor], variant: str = "agqa"
) -> tuple[dict[str, torch.Tensor], dict[str, list[str]], list[str]]:
    """Returns the renamed tensors, the unused reference keys by what they are, and the unrecognised keys."""
    converted, dropped, unrecognised = {}, {}, []
    for key, tensor in state.items():
        label = unused_label(key, variant)
        new_key = None if label is not None else rename_key(key)
        if label is not None:
            dropped.setdefault(label, []).append(key)
        elif new_key is None:
            unrecognised.append(key)
        else:
            converted[new_key] = tensor
    return converted, dropped, unrecognised


def convert_checkpoint(
    checkpoint: str | Path, output_dir: str | Path | None = None, variant: str | None = None, **config_kwargs
) -> Conversion:
    """Build the converted model (eval mode); save it to `output_dir` when given."""
    state = load_reference_state_dict(checkpoint)
    variant = variant or detect_variant(state)
    config = infer_config(state, variant, **config_kwargs)
    converted, dropped, unrecognised = convert_state_dict(state, variant)
    model = MistForVideoQuestionAnswering(config)
    expected = model.state_dict()
    unexpected = sorted(set(converted) - set(expected))
    if unexpected:
        raise NotAMistCheckpointError(f"checkpoint tensors with no place in the model: {', '.join(unexpected)}")
    missing = sorted(key for key in set(expected) - set(converted) if not key.endswith("position_ids"))
    if missing:
        raise NotAMistCheckpointError(f"checkpoint lacks tensors the model needs: {', '.join(missing)}")
    sliced = []
    for key, tensor in converted.items():
        if key.endswith("embeddings.position_embeddings.weight") and tensor.shape[0] > expected[key].shape[0]:
            converted[key] = tensor[: expected[key].shape[0]].clone()  # the rows the forward reads
            sliced.append(f"{key}: {tensor.shape[0]} -> {expected[key].shape[0]} rows")
        if converted[key].shape != expected[key].shape:
            raise NotAMistCheckpointError(
                f"{key}: checkpoint shape {tuple(tensor.shape)} does not fit the inferred model "
                f"{tuple(expected[key].shape)}"
            )
    model.load_state_dict(converted, strict=False)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
    return Conversion(model=model, variant=variant, dropped=dropped, unrecognised=unrecognised, sliced=sliced)


def save_converted(conversion: Conversion, output_dir, tokenizer_name: str | None, answers: list[str] | None) -> str:
    """Save the converted model and, when a tokenizer is at hand, its processor (tokenizer, CLIP choice, answers),
    after checking both: a refused conversion writes nothing. Returns the line saying what was written."""
    from .processing_mist import MistProcessor

    config = conversion.model.config
    if answers is not None:
        if config.multiple_choice:
            raise ValueError("--answer-vocabulary: the model is multiple choice; it ranks each question's choices")
        config.set_answer_vocabulary(answers)
    tokenizer, note = load_tokenizer(tokenizer_name, conversion.variant, config.text_config.vocab_size)
    conversion.model.save_pretrained(output_dir)
    if tokenizer is not None:
        processor = MistProcessor.from_mist_config(config, tokenizer)
        processor.save_pretrained(output_dir)
        video = processor.video_processor
        note = f"wrote the processor ({note}, CLIP {video.clip_model_name} with {video.clip_pretrained} weights)"
    if not config.multiple_choice and config.answer_vocabulary is None:
        note += "; no answer vocabulary: pass --answer-vocabulary vocab.json to answer open-ended questions"
    return note


def read_answer_vocabulary(path: str | Path) -> list[str]:
    """Open-ended answers from a JSON list, or an answer -> index object (the original code's `vocab.json`)."""
    import json

    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, ValueError) as error:
        raise ValueError(f"--answer-vocabulary {path}: cannot be read as JSON ({error})") from error
    if isinstance(value, dict):
        return [answer for answer, _ in sorted(value.items(), key=lambda item: int(item[1]))]
    if isinstance(value, list) and value:
        return [str(answer) for answer in value]
    raise ValueError(f"--answer-vocabulary {path}: expected a JSON list of answers or an answer -> index object")


def load_tokenizer(name_or_path: str | None, variant: str, vocab_size: int) -> tuple[object | None, str]:
    """The tokenizer the processor is saved with, and a line saying what was done.

    Without `name_or_path`, the variant's reference tokenizer is taken only when it is already in the local
    Hugging Face cache (a conversion never waits on the network unasked); otherwise None, with the flag that
    writes it. A tokenizer whose vocabulary does not match the text encoders' is refused.
    """
    from transformers import AutoTokenizer

    name = name_or_path or REFERENCE_TOKENIZERS[variant]
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=name_or_path is None)
    except (OSError, ValueError) as error:
        if name_or_path is not None:
            raise ValueError(f"--tokenizer {name}: cannot be loaded ({type(error).__name__}: {error})") from error
        return None, (
            f"no processor written ({name}, the reference tokenizer, is not in the local Hugging Face cache): "
            f"to use the folder with `mist predict` or the pipeline, convert again with --tokenizer {name} "
            "(downloads it) or --tokenizer DIR"
        )
    if len(tokenizer) != vocab_size:
        raise ValueError(
            f"--tokenizer {name}: {len(tokenizer)} tokens, but the checkpoint's text encoders have {vocab_size}; "
            f"expected the tokenizer the model was trained with ({REFERENCE_TOKENIZERS[variant]} for {variant})"
        )
    return tokenizer, f"tokenizer {name}"


SIZE_MEANINGS = {
    "num_frames": "frames per video",
    "num_segments": "segments",
    "grid_size": "patches per frame side",
    "num_selected_segments": "top-k segments",
    "num_selected_patches": "top-j patches",
}


def size_defaults(name: str) -> str:
    """The reference variants' value of a size no tensor carries, e.g. `"8, NExT-QA: 32"` (AGQA's first)."""
    values = {
        variant.title: variant.sizes[name] for variant in REFERENCE_VARIANTS.values() if name in variant.sizes
    }
    first = next(iter(values.values()))
    return ", ".join([str(first), *(f"{title}: {value}" for title, value in values.items() if value != first)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="state dict saved by the original training script (.pth)")
    parser.add_argument("output_dir", help="folder to write the transformers model to")
    parser.add_argument("--variant", choices=sorted(VARIANT_NAMES), default=None, help="default: from the keys")
    parser.add_argument("--num-attention-heads", type=int, default=None, help="ISTA heads (default: hidden_size / 64)")
    parser.add_argument(
        "--text-num-attention-heads", type=int, default=None, help="text encoder heads (default: hidden / 64)"
    )
    for name in UNTENSORED_SIZES:
        help_text = f"{SIZE_MEANINGS[name]} (default: {size_defaults(name)})"
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None, help=help_text)
    parser.add_argument("--max-question-length", type=int, default=None, help="default: from the position table")
    parser.add_argument(
        "--tokenizer",
        help="tokenizer (name or folder) saved with the processor, so that the folder answers questions as it comes "
        "(default: the variant's reference tokenizer when it is in the local Hugging Face cache)",
    )
    parser.add_argument(
        "--answer-vocabulary",
        help="open-ended answers (the original's vocab.json, or a JSON list) that the model ranks",
    )
    parser.add_argument(
        "--learned-positions",
        action="store_true",
        help="train the ISTA position tables when fine-tuning (the reference keeps them frozen)",
    )
    args = parser.parse_args(argv)
    try:
        answers = read_answer_vocabulary(args.answer_vocabulary) if args.answer_vocabulary else None
        conversion = convert_checkpoint(
            args.checkpoint,
            None,  # saved below, once the tokenizer is checked too
            variant=args.variant,
            num_attention_heads=args.num_attention_heads,
            text_num_attention_heads=args.text_num_attention_heads,
            **{name: getattr(args, name) for name in UNTENSORED_SIZES},
            max_question_length=args.max_question_length,
            freeze_position_embeddings=not args.learned_positions,
        )
        processor_note = save_converted(conversion, args.output_dir, args.tokenizer, answers)
    except (NotAMistCheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    name = VARIANT_NAMES[conversion.variant]
    dropped_count = sum(len(keys) for keys in conversion.dropped.values())
    print(f"{name} variant{'' if args.variant else ' (recognised from the keys)'}")
    print(f"dropped {dropped_count} tensors the {name} forward never uses: {', '.join(sorted(conversion.dropped))}")
    if conversion.unrecognised:
        print(f"dropped {len(conversion.unrecognised)} unrecognised tensors: {', '.join(conversion.unrecognised)}")
    for line in conversion.sliced:
        print(f"kept the used rows of {line}")
    config = conversion.model.config
    text = config.text_config
    print(
        f"wrote {args.output_dir}: {config.num_ista_layers} ISTA layers x {config.num_hidden_layers} blocks, "
        f"{config.num_temporal_layers} temporal blocks, hidden {config.hidden_size}, FFN {config.intermediate_size}, "
        f"Q={config.max_question_length}, sequence {config.sequence_length}, text encoder {text.model_type} "
        f"{text.num_hidden_layers} layers x {text.hidden_size}"
    )
    print(processor_note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
