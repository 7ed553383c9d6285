"""MIST model configuration."""

import os
import shutil
import sys
from dataclasses import field
from pathlib import Path
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec
from transformers.dynamic_module_utils import get_relative_import_files

PIPELINE_TASK = "video-question-answering"
# The `custom_pipelines` entry of a saved folder: `pipeline(PIPELINE_TASK, trust_remote_code=True)` loads this class.
PIPELINE_ENTRY = {"impl": "pipeline_mist.MistVideoQuestionAnsweringPipeline", "pt": ["AutoModel"], "type": "multimodal"}
PIPELINE_FILE = Path(__file__).with_name("pipeline_mist.py")


def pipeline_registered_here() -> bool:
    """Whether this process registered MIST's pipeline for `PIPELINE_TASK` (`import modeling_mist` does)."""
    pipelines = sys.modules.get("transformers.pipelines")  # no registration without that import
    if pipelines is None:
        return False
    registered = pipelines.PIPELINE_REGISTRY.supported_tasks.get(PIPELINE_TASK, {}).get("impl")
    return getattr(registered, "__name__", None) == PIPELINE_ENTRY["impl"].rsplit(".", 1)[1]


@strict
class MistConfig(PreTrainedConfig):
    r"""
    Configuration of a MIST model (Multi-modal Iterative Spatial-Temporal Transformer, CVPR 2023).
    The defaults are the paper's AGQA settings.

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the two text encoders (question and answers). Defaults to bert-base-uncased sizes.
        num_frames (`int`, defaults to 32): frames sampled per video.
        num_segments (`int`, defaults to 8): equal segments the frames are grouped into.
        grid_size (`int`, defaults to 4): patches per frame are a `grid_size x grid_size` grid.
        crop_size (`int`, defaults to 224): side of one patch crop; the canvas is `grid_size * crop_size`.
        clip_hidden_size (`int`, defaults to 512): width of the CLIP image and text embeddings.
        hidden_size (`int`, defaults to 512): width of the ISTA transformer (d_model).
        box_hidden_size (`int`, defaults to 128): width of the patch box-descriptor encoding.
        num_ista_layers (`int`, defaults to 2): iterative selection + attention layers.
        num_hidden_layers (`int`, defaults to 2): transformer blocks inside each ISTA layer.
        num_attention_heads (`int`, defaults to 8): attention heads of those blocks.
        intermediate_size (`int`, defaults to 1024): feed-forward width of those blocks.
        hidden_act (`str`, defaults to `"gelu"`): feed-forward activation.
        token_projection_act (`str`, defaults to `"gelu"`): activation of the question, segment and patch token
            projections (Linear -> activation -> LayerNorm); the reference's exact (erf) GELU.
        dropout (`float`, defaults to 0.3): dropout on embeddings, feed-forward outputs and the fusion head.
        attention_dropout (`float`, defaults to 0.3): dropout on attention probabilities.
        layer_norm_eps (`float`, defaults to 1e-12): epsilon of every LayerNorm of the ISTA layers.
        initializer_range (`float`, defaults to 0.02): std of the normal weight initialisation.
        num_selected_segments (`int`, defaults to 2): segments kept per ISTA layer (top-k).
        num_selected_patches (`int`, defaults to 12): patches kept per kept frame (top-j).
        max_question_length (`int`, defaults to 30): question token positions Q inside the ISTA sequence.
        max_answer_length (`int`, defaults to 38): answer tokens kept by the processor.
        train_selection (`str`, defaults to `"gumbel"`): how selection works in training mode (inference follows
            `eval_selection` whatever this is):
            `"gumbel"`: each of the k draws is a soft Gumbel-softmax weighting of the candidate *probabilities*, like
            the reference (a softmax of a softmax: the selector gets little gradient);
            `"gumbel_logits"`: the same draws of the *logits* (the scores before their softmax);
            `"gumbel_topk"`: relaxed Gumbel top-k, k soft draws *without replacement* of the logits (one Gumbel
            sample; draw i discounts what draws 1..i-1 took), soft and nearly independent at high temperature,
            the exact top-k of the perturbed logits as the temperature falls: anneal it
            (`gumbel_temperature_end`) so that training ends on the selections inference makes;
            `"gumbel_topk_hard"`: the exact one-hot top-k of the Gumbel-perturbed logits in the forward pass, with
            the gradient of the `"gumbel_topk"` relaxation (straight-through);
            `"topk"`: the deterministic hard top-k of inference with a straight-through gradient (no selection
            noise).
        gumbel_temperature (`float`, defaults to 1.0): temperature of the Gumbel-softmax draws (training, and the
            `"expectation"` inference rule); the start of the schedule when `gumbel_temperature_end` is set. The
            NExT-QA reference uses 100. With the logit rules it divides the logits, which span about
            +-`hidden_size` (dot products of two LayerNorm outputs).
        gumbel_temperature_end (`float`, *optional*): anneal the temperature geometrically from `gumbel_temperature`
            to this value over the first `gumbel_annealing_steps` training forward passes of the model (counted by
            each selector, not saved; optimizer steps times gradient-accumulation steps), then keep it. None: a
            constant temperature.
        gumbel_annealing_steps (`int`, defaults to 0): length of that schedule; needed (> 0) with
            `gumbel_temperature_end`.
        selection_prior_weight (`float`, defaults to 0.0): weight of an extra loss term that pulls every selector
            toward CLIP's own zero-shot relevance: for each ISTA layer, the KL divergence from
            `softmax(selection_prior_scale * cos(question, segment))` (segment: the mean of its L2-normalised
            CLIP frames) to the segment selector's probabilities, plus the same for the patch selector over the
            candidates of each kept frame (their raw CLIP crops, and the frame itself with
            `frame_as_patch_candidate`). Added to the loss whenever labels are given. 0: the reference's loss.
        selection_prior_scale (`float`, defaults to 100.0): the inverse temperature of that prior (CLIP's own
            logit scale is 100).
        selection_prior_on_patches (`bool`, defaults to `True`): `False` applies the prior to the segment
            selectors only: the patch selectors then learn from the answer alone, free to keep cells that CLIP
            does not relate to the question (an answer beside the asked object: docs/selection.md, the patch task).
        eval_selection (`str`, defaults to `"topk"`): how selection works at inference. `"topk"`: the i-th of the
            k draws is the candidate with the i-th highest score (deterministic; reproduces converted reference
            logits). `"expectation"`: every draw is the noise-free training draw, the weighting
            `softmax(probabilities / gumbel_temperature)` over all candidates (of the logits with
            `"gumbel_logits"`); the k training draws are independent and identically distributed, so all k
            become this same soft average (the reported indices are still the top-k). With `"gumbel_topk"` and
            `"gumbel_topk_hard"` it is their relaxed top-k of the logits without the Gumbel sample (k distinct
            soft draws). Use it for checkpoints trained at a high temperature (NExT-QA: 100),
            whose every training draw was close to a uniform average and which never saw a hard selection.
        answer_pooling (`str`, defaults to `"cls"`): how an answer's token states become one vector.
            `"cls"`: first token (AGQA and STAR references); `"mean"`: mean over the real tokens;
            `"mean_unmasked"`: mean over every position of the padded candidate, padding included (NExT-QA
            reference). With `"mean_unmasked"` a prediction depends on its batch's padding: candidates are padded
            to the longest in the batch, so the same question scores differently in another batch.
        num_temporal_layers (`int`, defaults to 0): transformer blocks (sized as the ISTA blocks) run over each
            patch's frames within its segment before selection; the NExT-QA reference has 2. Needs one frame
            per segment.
        frame_as_patch_candidate (`bool`, defaults to `False`): append the raw CLIP frame embedding as candidate
            `grid_size**2` (after the patches) of every frame, so patch selection may keep "the whole frame"
            (NExT-QA). Needs `hidden_size == clip_hidden_size`.
        use_patch_selection (`bool`, defaults to `True`): `False` keeps every patch (and the frame candidate) of
            every kept frame, in grid order, and builds no patch selector (STAR).
        question_tokens_in_sequence (`bool`, defaults to `True`): `False` builds the ISTA sequence as
            `[segments | kept patches]` (positions from 0, no modality embedding, no padding mask) and no
            question encoder: the question reaches the model only through `question_clip_embeds` (NExT-QA).
        segment_normalization (`str`, defaults to `"frame"`): `"frame"`: L2-normalise every frame over its
            channels, then average the segment's frames; `"time"`: average, then L2-normalise every channel over
            the segment axis (the NExT-QA reference's `norm(dim=1)`).
        fusion_pooling (`str`, defaults to `"first"`): the ISTA outputs summed into the fused vector: `"first"`,
            the first (question [CLS]) token; `"mean"`, the mean of all tokens (NExT-QA).
        freeze_position_embeddings (`bool`, defaults to `False`): `True` keeps every ISTA position table at its
            sinusoidal initialisation (a buffer: loaded with the weights, never trained), as all three
            references do; `False` trains it.
        task (`str`, defaults to `"open-ended"`): `"open-ended"` (every question is scored against one
            shared answer vocabulary, `id2label`) or `"multiple-choice"` (each question brings its own
            choices; `id2label` is unused).
        choice_template (`str`, defaults to `"{choice}"`): how a multiple-choice candidate becomes the text
            the answer encoder reads; `{question}`, `{choice}` and `{sep}` (the tokenizer's separator) are
            filled in, e.g. `"{question} {sep} {choice}"` for the NExT-QA and STAR references.
        custom_pipelines (`dict`, *optional*): transformers' remote-code pipelines of a saved folder, by task.
            Saving adds MIST's `video-question-answering` pipeline; where this project registered that
            pipeline, a loaded config leaves it out (`pipeline()` demands `trust_remote_code` for any task
            listed here).

    The task definition (task, choice template, answer vocabulary) lives here, with the weights it was
    trained for: it is saved in `config.json`, shown on the Hub, and read by the training collator
    (`MistDataCollator(processor, config=...)`), `mist evaluate`, `mist predict` and the pipeline. The
    processor receives a copy when it is built ([`MistProcessor.from_mist_config`]) so that it also works
    on its own.
    """

    model_type = "mist"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    text_config: dict | PreTrainedConfig | None = None
    num_frames: int = 32  # frames sampled per video (F)
    num_segments: int = 8  # segments of consecutive frames (S)
    grid_size: int = 4  # patches per frame = grid_size ** 2 (P)
    crop_size: int = 224  # pixels per patch crop side; canvas side = grid_size * crop_size
    clip_hidden_size: int = 512  # CLIP embedding width (D)
    hidden_size: int = 512  # ISTA transformer width (d)
    box_hidden_size: int = 128  # width of the encoded patch box descriptors
    num_ista_layers: int = 2  # iterative select-then-attend layers
    num_hidden_layers: int = 2  # transformer blocks per ISTA layer
    num_attention_heads: int = 8  # heads per attention block
    intermediate_size: int = 1024  # feed-forward width
    hidden_act: str = "gelu"  # feed-forward activation
    token_projection_act: str = "gelu"  # activation of the question / segment / patch token projections
    dropout: float | int = 0.3  # embedding / feed-forward / fusion dropout
    attention_dropout: float | int = 0.3  # attention-probability dropout
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon (DistilBERT-style blocks)
    initializer_range: float = 0.02  # std of normal initialisation
    num_selected_segments: int = 2  # top-k segments kept per ISTA layer
    num_selected_patches: int = 12  # top-j patches kept per kept frame
    max_question_length: int = 30  # question positions Q in the ISTA sequence
    max_answer_length: int = 38  # answer tokens the processor keeps
    train_selection: Literal["gumbel", "gumbel_logits", "gumbel_topk", "gumbel_topk_hard", "topk"] = (
        "gumbel"  # training selection rule
    )
    gumbel_temperature: float | int = 1.0  # Gumbel-softmax temperature in training (start of the schedule)
    gumbel_temperature_end: float | int | None = None  # anneal to this temperature; None: constant
    gumbel_annealing_steps: int = 0  # training forward passes the annealing takes
    selection_prior_weight: float | int = 0.0  # weight of the CLIP-relevance loss on the selectors; 0: none
    selection_prior_scale: float | int = 100.0  # inverse temperature of that CLIP-relevance prior
    selection_prior_on_patches: bool = True  # the prior on the patch selectors too; False: segment selectors only
    eval_selection: Literal["topk", "expectation"] = "topk"  # inference-time selection rule
    answer_pooling: Literal["cls", "mean", "mean_unmasked"] = "cls"  # answer token states -> one vector
    num_temporal_layers: int = 0  # blocks over each patch's frames before selection (NExT-QA: 2)
    frame_as_patch_candidate: bool = False  # the raw frame is patch candidate P + 1 (NExT-QA)
    use_patch_selection: bool = True  # False: every patch of every kept frame enters the sequence (STAR)
    question_tokens_in_sequence: bool = True  # False: ISTA sequence is [segments | kept] only (NExT-QA)
    segment_normalization: Literal["frame", "time"] = "frame"  # L2 axis of the segment summaries
    fusion_pooling: Literal["first", "mean"] = "first"  # ISTA output token(s) fused into the answer query
    freeze_position_embeddings: bool = False  # True: sinusoidal position tables, never trained
    task: Literal["open-ended", "multiple-choice"] = "open-ended"  # shared vocabulary or per-question choices
    choice_template: str = "{choice}"  # multiple choice: candidate text read by the answer encoder
    custom_pipelines: dict = field(default_factory=dict)  # pipelines of saved folders (MIST's: see save_pretrained)

    def __post_init__(self, **kwargs):
        if PIPELINE_TASK in self.custom_pipelines and pipeline_registered_here():
            stored = self.custom_pipelines
            self.custom_pipelines = {task: entry for task, entry in stored.items() if task != PIPELINE_TASK}
        super().__post_init__(**kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        """`PreTrainedConfig.save_pretrained`, and the folder gets MIST's pipeline: its `custom_pipelines` entry
        and code (`pipeline_mist.py` and the files it imports), so that `pipeline("video-question-answering",
        model=folder, trust_remote_code=True)` serves it where this project is not installed. A config loaded
        as remote code without the pipeline's file is saved as it is."""
        if not PIPELINE_FILE.is_file():
            return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        os.makedirs(save_directory, exist_ok=True)
        for source in [PIPELINE_FILE, *get_relative_import_files(PIPELINE_FILE)]:
            shutil.copyfile(source, Path(save_directory) / Path(source).name)
        shown = self.custom_pipelines
        self.custom_pipelines = {**shown, PIPELINE_TASK: dict(PIPELINE_ENTRY)}
        try:
            return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        finally:  # saving does not change the config this process sees
            self.custom_pipelines = shown

    @property
    def multiple_choice(self) -> bool:
        return self.task == "multiple-choice"

    @property
    def answer_vocabulary(self) -> list[str] | None:
        """The open-ended answers in logit order (`id2label`), or None: multiple choice, or only
        transformers' placeholder labels (`LABEL_0`, ...), which mean that no vocabulary was set."""
        if self.multiple_choice:
            return None
        id2label = {int(index): name for index, name in self.id2label.items()}
        if all(name == f"LABEL_{index}" for index, name in id2label.items()):
            return None
        return [id2label[index] for index in sorted(id2label)]

    def set_answer_vocabulary(self, answers: list[str]) -> None:
        """Make `answers` the open-ended vocabulary (`id2label` / `label2id`, in logit order)."""
        if self.multiple_choice:
            raise ValueError("a multiple-choice config has no answer vocabulary; its questions bring their choices")
        if not answers:
            raise ValueError("the answer vocabulary is empty; expected at least one answer")
        self.id2label = dict(enumerate(answers))
        self.label2id = {answer: index for index, answer in enumerate(answers)}

    @property
    def num_patches(self) -> int:
        """Patches per frame (P)."""
        return self.grid_size**2

    @property
    def frames_per_segment(self) -> int:
        return self.num_frames // self.num_segments

    @property
    def num_patch_candidates(self) -> int:
        """Patch-selection candidates per frame: the P patches, and the whole frame with `frame_as_patch_candidate`."""
        return self.num_patches + int(self.frame_as_patch_candidate)

    @property
    def tokens_per_kept_frame(self) -> int:
        """Tokens a kept frame puts in the ISTA sequence: its top-j candidates, or all without patch selection."""
        return self.num_selected_patches if self.use_patch_selection else self.num_patch_candidates

    @property
    def num_question_tokens(self) -> int:
        """Question positions in the ISTA sequence: Q, or none with `question_tokens_in_sequence=False`."""
        return self.max_question_length if self.question_tokens_in_sequence else 0

    @property
    def num_video_tokens(self) -> int:
        """Segment summaries plus kept patches in one ISTA sequence."""
        kept_patches = self.num_selected_segments * self.frames_per_segment * self.tokens_per_kept_frame
        return self.num_segments + kept_patches

    @property
    def num_output_hidden_states(self) -> int:
        """Hidden states `output_hidden_states` returns: per ISTA layer, the embedding and each block's output."""
        return self.num_ista_layers * (self.num_hidden_layers + 1)

    @property
    def sequence_length(self) -> int:
        """Length of the ISTA transformer input: `[Q question | S segments | kept patches]` (no question part
        with `question_tokens_in_sequence=False`)."""
        return self.num_question_tokens + self.num_video_tokens

    def validate_mist_sizes(self):
        """Reject size combinations the architecture cannot express."""
        if "{choice}" not in self.choice_template:
            raise ValueError(f"choice_template={self.choice_template!r} must contain '{{choice}}'")
        if self.num_frames % self.num_segments != 0:
            raise ValueError(f"num_frames={self.num_frames} must be divisible by num_segments={self.num_segments}")
        if not 1 <= self.num_selected_segments <= self.num_segments:
            raise ValueError(
                f"num_selected_segments={self.num_selected_segments} must be in [1, num_segments={self.num_segments}]"
            )
        if self.use_patch_selection and not 1 <= self.num_selected_patches <= self.num_patch_candidates:
            candidates = f"grid_size**2={self.num_patches}"
            if self.frame_as_patch_candidate:
                candidates = f"grid_size**2 + 1 (the frame)={self.num_patch_candidates}"
            raise ValueError(f"num_selected_patches={self.num_selected_patches} must be in [1, {candidates}]")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size={self.hidden_size} must be divisible by num_attention_heads={self.num_attention_heads}"
            )

    def validate_mist_variant(self):
        """Reject variant options (NExT-QA / STAR switches) that cannot work together."""
        if self.frame_as_patch_candidate and self.hidden_size != self.clip_hidden_size:
            raise ValueError(
                f"frame_as_patch_candidate=True puts the raw CLIP frame (clip_hidden_size={self.clip_hidden_size}) "
                f"beside the encoded patches (hidden_size={self.hidden_size}); the two widths must be equal"
            )
        if self.num_temporal_layers < 0:
            raise ValueError(f"num_temporal_layers={self.num_temporal_layers} must be >= 0")
        if self.num_temporal_layers > 0 and self.num_frames != self.num_segments:
            raise ValueError(
                f"num_temporal_layers={self.num_temporal_layers} needs one frame per segment, got "
                f"num_frames={self.num_frames} / num_segments={self.num_segments}: the reference's temporal encoder "
                "mixes up the frame and patch axes of longer segments, so no checkpoint defines that case"
            )
        if self.fusion_pooling == "first" and not self.question_tokens_in_sequence:
            raise ValueError(
                "fusion_pooling='first' reads the question's first token, but question_tokens_in_sequence=False "
                "puts no question in the ISTA sequence; use fusion_pooling='mean'"
            )
        if self.gumbel_temperature <= 0:
            raise ValueError(f"gumbel_temperature={self.gumbel_temperature} must be > 0")
        if self.gumbel_temperature_end is not None and self.gumbel_temperature_end <= 0:
            raise ValueError(
                f"gumbel_temperature_end={self.gumbel_temperature_end} must be > 0 (or None: no annealing)"
            )
        if self.selection_prior_weight < 0:
            raise ValueError(f"selection_prior_weight={self.selection_prior_weight} must be >= 0 (0: no prior term)")
        if self.selection_prior_scale <= 0:
            raise ValueError(f"selection_prior_scale={self.selection_prior_scale} must be > 0")
        if self.gumbel_annealing_steps < 0:
            raise ValueError(f"gumbel_annealing_steps={self.gumbel_annealing_steps} must be >= 0")
        if self.gumbel_temperature_end is not None and self.gumbel_annealing_steps == 0:
            raise ValueError(
                f"gumbel_temperature_end={self.gumbel_temperature_end} anneals over gumbel_annealing_steps training "
                "forward passes; set gumbel_annealing_steps > 0"
            )


__all__ = ["PIPELINE_ENTRY", "PIPELINE_TASK", "MistConfig"]
