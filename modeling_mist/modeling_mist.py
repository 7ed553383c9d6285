"""PyTorch MIST: Multi-modal Iterative Spatial-Temporal Transformer for long-form video QA (CVPR 2023)."""

import copy
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_mist import MistConfig

# Columns of a patch's box descriptor: x1/W, y1/H, x2/W, y2/H and the relative area.
BOX_DESCRIPTOR_SIZE = 5
# Modality ids of the ISTA sequence: question tokens, then video tokens (segments and patches).
QUESTION_MODALITY, VIDEO_MODALITY = 0, 1
NUM_MODALITIES = 2


@dataclass
class MistModelOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch, sequence_length, hidden_size)`):
        Output of the last ISTA layer: `[question | segments | kept patches]` tokens (no question part with
        `question_tokens_in_sequence=False`).
    pooler_output (`torch.FloatTensor` of shape `(batch, hidden_size)`):
        Fused question-video representation: sum over ISTA layers of the first token (`fusion_pooling="first"`)
        or of the mean of all tokens (`"mean"`), then projected.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*):
        For every ISTA layer, its embedding output and the output of each transformer block,
        each `(batch, sequence_length, hidden_size)`.
    attentions (`tuple(torch.FloatTensor)`, *optional*):
        Attention probabilities of every transformer block, each `(batch, heads, sequence_length, sequence_length)`.
    segment_indices (`tuple(torch.LongTensor)`):
        Per ISTA layer, the kept segments in rank order, `(batch, num_selected_segments)`.
    segment_scores (`tuple(torch.FloatTensor)`):
        Per ISTA layer, the selection probabilities of all segments, `(batch, num_segments)`.
    frame_indices (`tuple(torch.LongTensor)`):
        Per ISTA layer, the absolute index of every kept frame, `(batch, num_selected_segments, frames_per_segment)`.
    patch_indices (`tuple(torch.LongTensor)`):
        Per ISTA layer, the kept patches (row-major grid index) of every kept frame, in rank order,
        `(batch, num_selected_segments, frames_per_segment, num_selected_patches)`. With
        `frame_as_patch_candidate`, index `grid_size**2` is the whole frame. Without patch selection every
        candidate is kept: `0, 1, ..., num_patch_candidates - 1` (grid order) for every kept frame.
    patch_scores (`tuple(torch.FloatTensor)`, *optional*):
        Per ISTA layer, the selection probabilities of all candidates of every kept frame,
        `(batch, num_selected_segments, frames_per_segment, num_patch_candidates)`; None without patch selection.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    segment_indices: tuple[torch.LongTensor, ...] | None = None
    segment_scores: tuple[torch.FloatTensor, ...] | None = None
    frame_indices: tuple[torch.LongTensor, ...] | None = None
    patch_indices: tuple[torch.LongTensor, ...] | None = None
    patch_scores: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MistVideoQuestionAnsweringOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
        Cross-entropy over the answer candidates.
    logits (`torch.FloatTensor` of shape `(batch, num_answers)` or `(batch, num_choices)`):
        Score of every candidate answer: the open-ended vocabulary or each question's own choices.
    pooler_output (`torch.FloatTensor` of shape `(batch, hidden_size)`):
        Fused question-video representation that the answers are scored against.
    hidden_states, attentions, segment_indices, segment_scores, frame_indices, patch_indices, patch_scores:
        As in [`MistModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    segment_indices: tuple[torch.LongTensor, ...] | None = None
    segment_scores: tuple[torch.FloatTensor, ...] | None = None
    frame_indices: tuple[torch.LongTensor, ...] | None = None
    patch_indices: tuple[torch.LongTensor, ...] | None = None
    patch_scores: tuple[torch.FloatTensor, ...] | None = None


def grid_box_descriptors(grid_size: int, crop_size: int) -> torch.Tensor:
    """Box descriptor of every grid cell on the `grid_size * crop_size` square canvas, row-major.

    Returns `[grid_size**2, BOX_DESCRIPTOR_SIZE]` float32 on the default device: `x1/W, y1/H, x2/W, y2/H,
    (x2-x1+1)(y2-y1+1)/(W*H)`; the `+1` is the reference's pixel-inclusive area and is kept so converted
    checkpoints see the same inputs.
    """
    canvas = float(grid_size * crop_size)
    rows, cols = torch.meshgrid(
        torch.arange(grid_size, dtype=torch.float64), torch.arange(grid_size, dtype=torch.float64), indexing="ij"
    )
    x1, y1 = cols.flatten() * crop_size, rows.flatten() * crop_size
    x2, y2 = x1 + crop_size, y1 + crop_size
    area = (x2 - x1 + 1) * (y2 - y1 + 1) / (canvas * canvas)
    return torch.stack([x1 / canvas, y1 / canvas, x2 / canvas, y2 / canvas, area], dim=-1).float()


def sinusoidal_table(num_positions: int, dim: int) -> torch.Tensor:
    """`[num_positions, dim]` table: sin on even columns, cos on odd ones, frequency shared per column pair."""
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]
    pair_index = torch.div(torch.arange(dim), 2, rounding_mode="floor").to(torch.float64)
    angles = positions / torch.pow(10000.0, 2 * pair_index / dim)[None, :]
    table = torch.empty(num_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float()


def without_pooler(text_encoder: PreTrainedModel) -> PreTrainedModel:
    """MIST reads token states only: a BERT-style pooling head would hold weights that are never trained."""
    if getattr(text_encoder, "pooler", None) is not None:
        text_encoder.pooler = None  # BERT-family encoders skip a missing pooler
    return text_encoder


def build_text_encoder(text_config) -> PreTrainedModel:
    """A randomly initialised text encoder (any `AutoModel` type: BERT, DistilBERT, ...) for `text_config`."""
    return without_pooler(AutoModel.from_config(text_config))


class MistPatchEncoder(nn.Module):
    """Adds the grid-cell box encoding to every patch feature and projects to the model width."""

    def __init__(self, config: MistConfig):
        super().__init__()
        self.config = config
        box_width = config.box_hidden_size
        # 1x1 convolutions over a [channels, frames, patches] layout, as the reference lays the boxes out.
        self.box_encoder = nn.Sequential(
            nn.Conv2d(BOX_DESCRIPTOR_SIZE, box_width, kernel_size=1),
            nn.BatchNorm2d(box_width),
            nn.ReLU(),
            nn.Conv2d(box_width, box_width, kernel_size=1),
            nn.BatchNorm2d(box_width),
            nn.ReLU(),
        )
        self.projection = nn.Linear(config.clip_hidden_size + box_width, config.hidden_size)
        self.activation = nn.ELU()
        # Made once and moved with the model (not saved): building it in the forward copied it from the host to
        # the accelerator at every step, a synchronisation that CUDA's sync debug mode reports.
        self.register_buffer("box_descriptors", self.grid_boxes(), persistent=False)

    def grid_boxes(self) -> torch.Tensor:
        return grid_box_descriptors(self.config.grid_size, self.config.crop_size)

    def forward(self, patch_features: torch.Tensor) -> torch.Tensor:
        """`[*, frames, P, clip_hidden]` -> `[*, frames, P, hidden]`: `projection([patch; box encoding])`, then ELU."""
        *leading, num_frames, _, feature_size = patch_features.shape
        boxes = self.box_descriptors.to(patch_features.dtype)  # [patches, box descriptor]
        box_input = boxes.t()[None, :, None, :]  # [1, box, 1, patches]
        if self.training:
            # BatchNorm running statistics count every (video, frame, patch) position, like the reference.
            box_input = box_input.expand(math.prod(leading), -1, num_frames, -1)  # [batch, box, frames, patches]
        # Every position of a patch has the same box input, so its encoding is one row per patch.
        box_states = self.box_encoder(box_input)[0, :, 0].t()  # [patches, box]
        # The projection of [feature; box] is split in two: the box half is one bias row per patch, so the
        # concatenated [*, frames, P, D + box] input is never built (the same sum, in another rounding order).
        weight = self.projection.weight
        box_bias = F.linear(box_states, weight[:, feature_size:], self.projection.bias)  # [patches, hidden]
        patch_states = F.linear(patch_features, weight[:, :feature_size]) + box_bias
        return self.activation(patch_states)  # [*, frames, patches, hidden]


def gumbel_top_k(
    logits: torch.Tensor, num_selected: int, temperature: float, hard: bool, noise: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relaxed Gumbel top-k: k draws without replacement, in rank order.

    logits `[batch, groups, candidates]` -> weights `[batch, groups, num_selected, candidates]` and indices
    `[batch, groups, num_selected]`, the top-k of the Gumbel-perturbed logits (one noise sample shared by
    the k draws). Draw i is `softmax((perturbed + log remaining) / temperature)`, where `remaining` is the
    product of `1 - w` over the earlier draws' weights `w`: a candidate is discounted by how much earlier
    draws took it. High temperatures give soft, nearly independent draws; as the temperature falls they
    become the exact top-k. `hard=True` returns exactly one-hot rows of the top-k with the gradient of
    these relaxations (straight-through). `noise=False` drops the Gumbel sample: the deterministic relaxed
    top-k of the logits themselves (the `"expectation"` inference rule of the top-k training rules).
    """
    if noise:
        gumbels = -torch.empty_like(logits).exponential_().log()  # standard Gumbel noise, as F.gumbel_softmax does
        perturbed = logits + gumbels  # [batch, groups, candidates]
    else:
        perturbed = logits
    indices = perturbed.topk(num_selected, dim=-1).indices  # [batch, groups, k], descending perturbed logit
    tiny = torch.finfo(logits.dtype).tiny
    log_remaining = torch.zeros_like(logits)  # log of the share of each candidate that no draw took yet
    draws = []
    for _ in range(num_selected):
        draw = ((perturbed + log_remaining) / temperature).softmax(dim=-1)  # [batch, groups, candidates]
        draws.append(draw)
        log_remaining = log_remaining + torch.log((1 - draw).clamp(min=tiny))
    soft = torch.stack(draws, dim=2)  # [batch, groups, k, candidates]
    if not hard:
        return soft, indices
    one_hot = F.one_hot(indices, logits.shape[-1]).to(logits.dtype)  # [batch, groups, k, candidates]
    return one_hot + (soft - soft.detach()), indices  # x - x is exactly 0: the forward values stay one-hot


class MistSelector(nn.Module):
    """Scores candidates against the CLIP question embedding and keeps `num_selected` of them.

    Training, by `train_selection`: `"gumbel"` (reference), each of the `num_selected` draws is a
    Gumbel-softmax weighting of the candidate probabilities; `"gumbel_logits"`, the same of the logits
    (the scores before their softmax); `"gumbel_topk"`, relaxed Gumbel top-k draws without replacement
    (`gumbel_top_k`), `"gumbel_topk_hard"` their exact one-hot top-k with a straight-through gradient;
    `"topk"`, the hard top-k of inference with a straight-through gradient. The Gumbel temperature may
    anneal over the training forward passes (`temperature`). Inference (`eval_selection="topk"`): the
    i-th draw is the candidate with the i-th highest score (hard top-k, descending), taken with a gather.
    Inference with `eval_selection="expectation"`: every draw is the noise-free soft Gumbel draw,
    `softmax(probabilities / temperature)` (of the logits with `"gumbel_logits"`); the returned indices
    are then the top-k all the same.
    """

    def __init__(self, config: MistConfig, key_size: int, num_selected: int):
        super().__init__()
        self.config = config
        self.num_selected = num_selected
        self.query_proj = nn.Linear(config.clip_hidden_size, config.hidden_size)
        self.query_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.key_proj = nn.Linear(key_size, config.hidden_size)
        self.key_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # Training forwards so far (not saved), the clock of the temperature schedule; a tensor updated in place, so
        # that a compiled training step does not recompile as it advances.
        self.register_buffer("training_forwards", torch.zeros((), dtype=torch.long), persistent=False)

    def temperature(self) -> float | torch.Tensor:
        """The Gumbel temperature of the next draw: `gumbel_temperature`, or, with `gumbel_temperature_end`,
        geometric from `gumbel_temperature` to `gumbel_temperature_end` over the first `gumbel_annealing_steps`
        training forward passes, then constant (at inference: the end temperature)."""
        start, end = self.config.gumbel_temperature, self.config.gumbel_temperature_end
        if end is None:
            return start
        if not self.training:
            return end
        progress = (self.training_forwards / self.config.gumbel_annealing_steps).clamp(max=1.0)  # float scalar tensor
        return start * (end / start) ** progress

    def forward(
        self, question: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        question `[batch, D]`, keys `[batch, groups, candidates, key_size]`,
        values `[batch, groups, candidates, *rest]`.
        Returns the selected values `[batch, groups, num_selected, *rest]`, their indices
        `[batch, groups, num_selected]` and the candidate probabilities `[batch, groups, candidates]`.
        """
        query = self.query_norm(self.query_proj(question))  # [batch, hidden]
        keys = self.key_norm(self.key_proj(keys))  # [batch, groups, candidates, hidden]
        logits = torch.einsum("bgch,bh->bgc", keys, query)  # [batch, groups, candidates]
        scores = logits.softmax(dim=-1)  # [batch, groups, candidates]
        batch_size, num_groups, num_candidates = scores.shape
        flat_values = values.reshape(batch_size, num_groups, num_candidates, -1)  # [batch, groups, candidates, rest]

        rule, temperature = self.config.train_selection, self.temperature()
        if self.training and self.config.gumbel_temperature_end is not None:
            self.training_forwards.add_(1)
        # The reference feeds probabilities, not logits, to gumbel_softmax (a softmax of a softmax): kept as "gumbel".
        soft_input = logits if rule == "gumbel_logits" else scores
        draws_input = soft_input.unsqueeze(2).expand(-1, -1, self.num_selected, -1)  # [batch, groups, k, candidates]
        if self.training and rule in ("gumbel", "gumbel_logits"):
            weights = F.gumbel_softmax(draws_input, tau=temperature, dim=-1)
            indices = weights.argmax(dim=-1)
            selected = torch.matmul(weights, flat_values)  # [batch, groups, k, rest]
        elif self.training and rule in ("gumbel_topk", "gumbel_topk_hard"):
            weights, indices = gumbel_top_k(logits, self.num_selected, temperature, hard=rule == "gumbel_topk_hard")
            selected = torch.matmul(weights, flat_values)  # [batch, groups, k, rest]
        elif not self.training and self.config.eval_selection == "expectation":
            if rule in ("gumbel_topk", "gumbel_topk_hard"):
                # The relaxed top-k of the logits without Gumbel noise: k distinct soft draws, as in training.
                weights, _ = gumbel_top_k(logits, self.num_selected, temperature, hard=False, noise=False)
            else:
                # The training draw without its Gumbel noise; the k draws are identical, as their expectations are.
                weights = (draws_input / temperature).softmax(dim=-1)
            indices = scores.topk(self.num_selected, dim=-1).indices  # [batch, groups, k], descending score
            selected = torch.matmul(weights, flat_values)  # [batch, groups, k, rest]
        else:
            indices = scores.topk(self.num_selected, dim=-1).indices  # [batch, groups, k], descending score
            if self.training:
                # Hard top-k forward with a straight-through gradient, so the selector still learns.
                hard = F.one_hot(indices, num_candidates).to(scores.dtype)  # [batch, groups, k, candidates]
                weights = hard + (scores.unsqueeze(2) - scores.unsqueeze(2).detach())  # forward: exactly one-hot
                selected = torch.matmul(weights, flat_values)
            else:
                batch_index = torch.arange(batch_size, device=scores.device)[:, None, None]
                group_index = torch.arange(num_groups, device=scores.device)[None, :, None]
                selected = flat_values[batch_index, group_index, indices]  # [batch, groups, k, rest]
        selected = selected.reshape(batch_size, num_groups, self.num_selected, *values.shape[3:])
        return selected, indices, scores


class MistTokenProjection(nn.Module):
    """Linear -> activation (GELU by default) -> LayerNorm to the model width (question, segment and patch tokens)."""

    def __init__(self, config: MistConfig, input_size: int):
        super().__init__()
        self.dense = nn.Linear(input_size, config.hidden_size)
        self.activation = ACT2FN[config.token_projection_act]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.norm(self.activation(self.dense(hidden_states)))


class MistPositionEmbeddings(nn.Module):
    """The `[sequence_length, hidden]` position table of one ISTA layer, sinusoidal at initialisation.

    A trained parameter, or with `freeze_position_embeddings` a buffer (saved and loaded with the weights, never
    trained), as in all three references.
    """

    def __init__(self, config: MistConfig):
        super().__init__()
        # In the default dtype, as nn.Embedding would be: from_pretrained(dtype=...) builds the model under it.
        table = sinusoidal_table(config.sequence_length, config.hidden_size).to(torch.get_default_dtype())
        if config.freeze_position_embeddings:
            self.register_buffer("weight", table)
        else:
            self.weight = nn.Parameter(table)


class MistSequenceEmbeddings(nn.Module):
    """Adds positions and the question/video modality to the ISTA tokens, then LayerNorm and dropout.

    Without question tokens in the sequence (NExT-QA) there is no modality embedding and positions start at the
    first segment token.
    """

    def __init__(self, config: MistConfig):
        super().__init__()
        self.config = config
        self.position_embeddings = MistPositionEmbeddings(config)
        self.modality_embeddings = None
        if config.question_tokens_in_sequence:
            self.modality_embeddings = nn.Embedding(NUM_MODALITIES, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """`[batch, sequence, hidden]` -> the same shape."""
        sequence_length = tokens.shape[1]
        embeddings = tokens + self.position_embeddings.weight[:sequence_length]
        if self.modality_embeddings is not None:
            modality_ids = torch.full((sequence_length,), VIDEO_MODALITY, dtype=torch.long, device=tokens.device)
            modality_ids[: self.config.max_question_length] = QUESTION_MODALITY  # video always starts at position Q
            embeddings = embeddings + self.modality_embeddings(modality_ids)
        return self.dropout(self.norm(embeddings))


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention; query/key/value `[batch, heads, length, head_dim]`.

    `attention_mask` is additive (the eager mask) or boolean (the sdpa mask, when a call that asks for the
    probabilities falls back to this kernel), `[batch, 1, length, length]`, or None.
    """
    attention_scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # [batch, heads, length, length]
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        attention_scores = attention_scores.masked_fill(~attention_mask, torch.finfo(attention_scores.dtype).min)
    elif attention_mask is not None:
        attention_scores = attention_scores + attention_mask
    attention_probs = attention_scores.softmax(dim=-1)
    attention_probs = F.dropout(attention_probs, p=dropout, training=module.training)
    attention_output = (
        torch.matmul(attention_probs, value).transpose(1, 2).contiguous()
    )  # [batch, length, heads, head_dim]
    return attention_output, attention_probs


class MistAttention(nn.Module):
    """Multi-head self-attention over the ISTA sequence, dispatched to the configured attention kernel."""

    def __init__(self, config: MistConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`[batch, length, hidden]` -> the attended states and the probabilities (None from fused kernels)."""
        batch_size, length, _ = hidden_states.shape
        head_shape = (batch_size, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(head_shape).transpose(1, 2)  # [batch, heads, length, head_dim]
        key = self.k_proj(hidden_states).view(head_shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(head_shape).transpose(1, 2)

        # Fused kernels do not return probabilities, so a call that asks for them runs eagerly.
        wants_probabilities = kwargs.get("output_attentions", self.config.output_attentions)
        implementation = "eager" if wants_probabilities else self.config._attn_implementation
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        attention_output, attention_probs = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attention_output = attention_output.reshape(batch_size, length, -1)  # [batch, length, hidden]
        return self.o_proj(attention_output), attention_probs


class MistFeedForward(nn.Module):
    """Position-wise feed-forward: Linear -> `hidden_act` -> Linear -> dropout."""

    def __init__(self, config: MistConfig):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down_proj(self.activation(self.up_proj(hidden_states))))


class MistTransformerBlock(GradientCheckpointingLayer):
    """Post-LayerNorm block (DistilBERT layout): attention -> add & norm -> feed-forward -> add & norm."""

    def __init__(self, config: MistConfig):
        super().__init__()
        self.attention = MistAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = MistFeedForward(config)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        attention_output, _ = self.attention(hidden_states, attention_mask, **kwargs)
        hidden_states = self.attention_norm(attention_output + hidden_states)
        return self.output_norm(self.feed_forward(hidden_states) + hidden_states)


@dataclass
class IstaLayerOutput:
    """What one ISTA layer hands to the next one and to the model output.

    Shapes use k = `num_selected_segments`, f = `frames_per_segment`, S = `num_segments`, C =
    `num_patch_candidates` (P = `grid_size**2` patches, plus the whole frame as candidate P with
    `frame_as_patch_candidate`) and j' = `tokens_per_kept_frame` (j = `num_selected_patches`, or C without patch
    selection).
    """

    hidden_states: torch.Tensor  # [batch, sequence_length, hidden]: the last block's output
    segment_indices: torch.Tensor  # [batch, k]: kept segments in rank order
    segment_scores: torch.Tensor  # [batch, S]: selection probabilities of all segments
    frame_indices: torch.Tensor  # [batch, k, f]: absolute index of every kept frame
    patch_indices: torch.Tensor  # [batch, k, f, j']: kept candidates per kept frame, rank order (or grid order)
    patch_scores: torch.Tensor | None  # [batch, k, f, C]: candidate probabilities; None without patch selection


class MistTemporalEncoder(nn.Module):
    """Transformer blocks over each patch position's frames within its segment, run before selection (NExT-QA)."""

    def __init__(self, config: MistConfig):
        super().__init__()
        self.layers = nn.ModuleList([MistTransformerBlock(config) for _ in range(config.num_temporal_layers)])

    def forward(self, patch_states: torch.Tensor) -> torch.Tensor:
        """`[batch, S, frames_per_segment, P, hidden]` -> the same shape."""
        batch_size, num_segments, frames_per_segment, num_patches, hidden_size = patch_states.shape
        # One sequence per patch position of every segment: its frames in time order, [batch * S * P, f, hidden].
        sequences = patch_states.transpose(2, 3).reshape(-1, frames_per_segment, hidden_size)
        for block in self.layers:
            sequences = block(sequences)  # every frame is real: no mask
        sequences = sequences.reshape(batch_size, num_segments, num_patches, frames_per_segment, hidden_size)
        return sequences.transpose(2, 3)  # [batch, S, f, P, hidden]


class MistIstaLayer(nn.Module):
    """One iteration: select segments, then patches in their frames, then attend over question + video tokens."""

    def __init__(self, config: MistConfig, layer_index: int):
        super().__init__()
        self.config = config
        first = layer_index == 0
        # The first layer reads text-encoder states and CLIP segment summaries; later ones the previous layer's outputs.
        question_size = config.text_config.hidden_size if first else config.hidden_size
        segment_size = config.clip_hidden_size if first else config.hidden_size
        self.segment_selector = MistSelector(config, segment_size, config.num_selected_segments)
        self.patch_selector = None
        if config.use_patch_selection:
            self.patch_selector = MistSelector(config, config.hidden_size, config.num_selected_patches)
        self.question_projection = None
        if config.question_tokens_in_sequence:
            self.question_projection = MistTokenProjection(config, question_size)
        self.segment_projection = MistTokenProjection(config, segment_size)
        self.patch_projection = MistTokenProjection(config, config.hidden_size)
        self.embeddings = MistSequenceEmbeddings(config)
        self.layers = nn.ModuleList([MistTransformerBlock(config) for _ in range(config.num_hidden_layers)])

    def select(
        self, question_clip: torch.Tensor, segment_states: torch.Tensor, candidate_states: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Segment selection, then patch selection in the kept frames.

        candidate_states `[batch, S, f, C, hidden]` -> kept tokens `[batch, k * f * j', hidden]` (segment draw
        rank, then frame time order, then patch rank or grid order), segment indices `[batch, k]` and scores
        `[batch, S]`, patch indices `[batch, k * f, j']` and scores `[batch, k * f, C]` (None without patch selection).
        """
        batch_size, num_segments, _, num_candidates, hidden_size = candidate_states.shape
        segment_values = candidate_states.reshape(batch_size, 1, num_segments, -1)  # [batch, 1, S, f * C * hidden]
        kept_frames, segment_indices, segment_scores = self.segment_selector(
            question_clip, segment_states.unsqueeze(1), segment_values
        )
        kept_frames = kept_frames.reshape(batch_size, -1, num_candidates, hidden_size)  # [batch, k * f, C, hidden]
        if self.patch_selector is None:
            patch_indices = torch.arange(num_candidates, device=kept_frames.device).expand(*kept_frames.shape[:2], -1)
            kept_patches, patch_scores = kept_frames, None
        else:
            kept_patches, patch_indices, patch_scores = self.patch_selector(question_clip, kept_frames, kept_frames)
        kept_patches = kept_patches.reshape(batch_size, -1, hidden_size)  # [batch, k * f * j', hidden]
        return kept_patches, segment_indices.squeeze(1), segment_scores.squeeze(1), patch_indices, patch_scores

    def forward(
        self,
        question_clip: torch.Tensor,
        question_states: torch.Tensor | None,
        question_mask: torch.Tensor | None,
        segment_states: torch.Tensor,
        candidate_states: torch.Tensor,
        **kwargs: Unpack[TransformersKwargs],
    ) -> IstaLayerOutput:
        """question_clip `[batch, D]`; question_states `[batch, Q, *]` with question_mask `[batch, Q]` (1 = token),
        both None when the question is not in the sequence; segment_states `[batch, S, *]`; candidate_states
        `[batch, S, frames_per_segment, C, hidden]` (the encoded patches, and the raw frame as candidate P)."""
        config = self.config
        batch_size, _, frames_per_segment = candidate_states.shape[:3]
        kept_patches, segment_indices, segment_scores, patch_indices, patch_scores = self.select(
            question_clip, segment_states, candidate_states
        )

        tokens = [self.segment_projection(segment_states), self.patch_projection(kept_patches)]
        if self.question_projection is not None:
            tokens.insert(0, self.question_projection(question_states))
        hidden_states = self.embeddings(torch.cat(tokens, dim=1))  # [batch, (Q +) S + k * f * j', hidden]
        attention_mask = None  # video tokens are never padding
        if question_mask is not None:
            video_mask = question_mask.new_ones(batch_size, hidden_states.shape[1] - question_mask.shape[1])
            sequence_mask = torch.cat([question_mask, video_mask], dim=1)  # [batch, sequence]
            # No check for an all-ones mask (that would read the mask on the host: a device sync per layer).
            attention_mask = create_bidirectional_mask(
                config=config,
                inputs_embeds=hidden_states,
                attention_mask=sequence_mask,
                allow_is_bidirectional_skip=False,
            )
        for block in self.layers:
            hidden_states = block(hidden_states, attention_mask, **kwargs)

        frame_offsets = torch.arange(frames_per_segment, device=segment_indices.device)
        shape = (batch_size, config.num_selected_segments, frames_per_segment)
        return IstaLayerOutput(
            hidden_states=hidden_states,
            segment_indices=segment_indices,
            segment_scores=segment_scores,
            frame_indices=segment_indices[..., None] * frames_per_segment + frame_offsets,
            patch_indices=patch_indices.reshape(*shape, -1),
            patch_scores=None if patch_scores is None else patch_scores.reshape(*shape, -1),
        )


class MistPreTrainedModel(PreTrainedModel):
    """Weight initialisation, attention kernels and output recording shared by the MIST models."""

    config: MistConfig
    base_model_prefix = "mist"
    main_input_name = "frame_features"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["MistIstaLayer", "MistPatchEncoder"]  # text encoders add their own
    _supports_sdpa = True
    _supports_attention_backend = True
    # The loss is a plain per-batch mean: the Trainer must scale it for gradient accumulation and processes itself.
    accepts_loss_kwargs = False
    _can_record_outputs = {
        # Per ISTA layer: its embedding output, then each block's output (not the temporal encoder's).
        "hidden_states": OutputRecorder(
            (MistSequenceEmbeddings, MistTransformerBlock),
            layer_name="ista_layers",
            capture_initial_hidden_state=False,
            num_hidden_layers_key="num_output_hidden_states",
        ),
        "attentions": OutputRecorder(MistAttention, index=1, layer_name="ista_layers"),
    }

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        # On the table's own module: remote-code models skip initialising modules without direct parameters.
        if isinstance(module, MistPositionEmbeddings):
            init.copy_(module.weight, sinusoidal_table(*module.weight.shape))
        if isinstance(module, MistPatchEncoder):
            init.copy_(module.box_descriptors, module.grid_boxes())
        if isinstance(module, MistSelector):
            init.zeros_(module.training_forwards)  # a fresh (or loaded) model starts its temperature schedule

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, then the weight files get the mode of the `config.json` beside them
        (written with `open`, so the user's umask): safetensors writes them 0600 (a temporary file renamed), which
        another user, a service account or a Space could not read."""
        super().save_pretrained(save_directory, *args, **kwargs)
        config_file = Path(save_directory) / "config.json"
        if kwargs.get("is_main_process", True) and config_file.is_file():
            mode = stat.S_IMODE(config_file.stat().st_mode)
            for path in Path(save_directory).glob("*.safetensors"):
                os.chmod(path, mode)


def _check_labels(labels: torch.Tensor, num_candidates: int) -> None:
    """Refuse labels outside `[0, num_candidates)` other than -100, reading them only where that is free.

    Host labels are checked here with a message naming them; labels on an accelerator (or under
    torch.compile) are left to `cross_entropy`'s own device-side check, so that the training step never
    waits for the device.
    """
    if labels.device.type != "cpu" or torch.compiler.is_compiling():
        return
    invalid = (labels != -100) & ((labels < 0) | (labels >= num_candidates))
    if invalid.any():
        bad = labels[invalid].tolist()
        raise ValueError(f"labels {bad} are out of range: expected indices in [0, {num_candidates}) or -100")


def _check_shape(name: str, tensor: torch.Tensor, expected: tuple, meaning: str):
    """`expected` holds sizes or None (any); raises a ValueError naming the input and what was expected."""
    if tensor.dim() != len(expected) or any(e is not None and e != s for e, s in zip(expected, tensor.shape)):
        wanted = ", ".join("?" if e is None else str(e) for e in expected)
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected ({wanted}) = {meaning}")


def segment_summaries(frame_features: torch.Tensor, num_segments: int, normalization: str) -> torch.Tensor:
    """Raw CLIP frames `[batch, F, D]` -> one summary per segment of consecutive frames `[batch, S, D]`.

    `"frame"`: mean of the segment's L2-normalised frames (not re-normalised). `"time"`: mean of the raw frames,
    then every channel L2-normalised over the S segments (the NExT-QA reference's `norm(dim=1)`).
    """
    batch_size, num_frames, width = frame_features.shape
    segments = frame_features.reshape(batch_size, num_segments, num_frames // num_segments, width)
    if normalization == "frame":
        return F.normalize(segments, dim=-1).mean(dim=2)
    return F.normalize(segments.mean(dim=2), dim=1)


def kl_to_prior(prior_logits: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """Mean over all leading positions of KL(softmax(prior_logits) || probabilities), over the last axis."""
    prior_log = prior_logits.log_softmax(dim=-1)
    log_probabilities = probabilities.float().clamp_min(torch.finfo(torch.float32).tiny).log()
    return (prior_log.exp() * (prior_log - log_probabilities)).sum(dim=-1).mean()


def clip_selection_prior_loss(
    config: MistConfig,
    outputs: "MistModelOutput",
    frame_features: torch.Tensor,
    patch_features: torch.Tensor,
    question_clip_embeds: torch.Tensor,
) -> torch.Tensor:
    """The `selection_prior_weight` term (unweighted): how far every selector is from CLIP's zero-shot relevance.

    Per ISTA layer, KL(prior || segment probabilities) with the prior `softmax(scale * cos(question, segment))`,
    a segment being the mean of its L2-normalised CLIP frames, plus, with patch selection (and
    `selection_prior_on_patches`), the mean over kept frames of KL(prior || patch probabilities) with the cosine to each candidate's raw CLIP embedding; averaged
    over the layers. The prior depends only on the inputs, so its gradient reaches the selectors alone. Computed
    in float32 outside autocast: a scale of 100 would turn bf16's rounding of the cosines into whole logits.
    """
    with torch.autocast(device_type=frame_features.device.type, enabled=False):
        scale = config.selection_prior_scale
        question = F.normalize(question_clip_embeds.float(), dim=-1)  # [batch, D]
        segments = F.normalize(segment_summaries(frame_features.float(), config.num_segments, "frame"), dim=-1)
        segment_prior = scale * torch.einsum("bsd,bd->bs", segments, question)  # [batch, S]
        candidates = F.normalize(patch_features.float(), dim=-1)  # [batch, F, P, D]
        if config.frame_as_patch_candidate:
            frames = F.normalize(frame_features.float(), dim=-1)[:, :, None]  # [batch, F, 1, D]
            candidates = torch.cat([candidates, frames], dim=2)  # [batch, F, P + 1, D]
        candidate_prior = scale * torch.einsum("bfcd,bd->bfc", candidates, question)  # [batch, F, C]
        batch_index = torch.arange(question.shape[0], device=question.device)[:, None, None]
        terms = []
        for layer, segment_scores in enumerate(outputs.segment_scores):
            term = kl_to_prior(segment_prior, segment_scores)
            if outputs.patch_scores is not None and config.selection_prior_on_patches:
                kept_prior = candidate_prior[batch_index, outputs.frame_indices[layer]]  # [batch, k, f, C]
                term = term + kl_to_prior(kept_prior, outputs.patch_scores[layer])
            terms.append(term)
        return torch.stack(terms).mean()


class MistModel(MistPreTrainedModel):
    """Patch encoder, question encoder and ISTA layers -> fused question-video representation."""

    def __init__(self, config: MistConfig):
        super().__init__(config)
        self.patch_encoder = MistPatchEncoder(config)
        self.temporal_encoder = MistTemporalEncoder(config) if config.num_temporal_layers > 0 else None
        # Without question tokens in the sequence the question encoder would have no effect (the NExT-QA reference
        # runs its one and discards the output), so it is not built.
        self.question_encoder = None
        if config.question_tokens_in_sequence:
            self.question_encoder = build_text_encoder(config.text_config)
        self.ista_layers = nn.ModuleList([MistIstaLayer(config, i) for i in range(config.num_ista_layers)])
        self.fusion_dropout = nn.Dropout(config.dropout)
        self.fusion_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module | None:
        return None if self.question_encoder is None else self.question_encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        if self.question_encoder is None:
            raise ValueError("question_tokens_in_sequence=False: this model has no question encoder")
        self.question_encoder.set_input_embeddings(value)

    def _check_inputs(self, frame_features, patch_features, input_ids, attention_mask, question_clip_embeds):
        config = self.config
        frames, patches, width = config.num_frames, config.num_patches, config.clip_hidden_size
        batch_size = frame_features.shape[0]
        _check_shape(
            "frame_features", frame_features, (batch_size, frames, width), "(batch, num_frames, clip_hidden_size)"
        )
        _check_shape(
            "patch_features",
            patch_features,
            (batch_size, frames, patches, width),
            "(batch, num_frames, grid_size**2, clip_hidden_size)",
        )
        _check_shape("question_clip_embeds", question_clip_embeds, (batch_size, width), "(batch, clip_hidden_size)")
        if input_ids is None:
            if config.question_tokens_in_sequence:
                raise ValueError("input_ids is None, but question_tokens_in_sequence=True needs the question tokens")
            return
        _check_shape("input_ids", input_ids, (batch_size, None), "(batch, question_length)")
        if attention_mask is not None:
            _check_shape("attention_mask", attention_mask, tuple(input_ids.shape), "the shape of input_ids")
        if input_ids.shape[1] > config.max_question_length:
            raise ValueError(
                f"input_ids has {input_ids.shape[1]} tokens but config.max_question_length is "
                f"{config.max_question_length}; truncate the question (MistProcessor does)"
            )

    def encode_question(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Question token states zero-padded to Q positions `[batch, Q, text_hidden]` and their mask `[batch, Q]`."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        question_states = self.question_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        padding = self.config.max_question_length - question_states.shape[1]
        return F.pad(question_states, (0, 0, 0, padding)), F.pad(attention_mask, (0, padding))

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        frame_features: torch.Tensor,
        patch_features: torch.Tensor,
        input_ids: torch.LongTensor | None,
        question_clip_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MistModelOutput:
        r"""
        frame_features (`torch.FloatTensor` of shape `(batch, num_frames, clip_hidden_size)`):
            Raw CLIP image embedding of every sampled frame.
        patch_features (`torch.FloatTensor` of shape `(batch, num_frames, grid_size**2, clip_hidden_size)`):
            Raw CLIP image embedding of every grid crop of every frame, row-major.
        input_ids (`torch.LongTensor` of shape `(batch, question_length)`):
            The question in the text encoder's vocabulary, at most `max_question_length` tokens. Unused (and may
            be None) with `question_tokens_in_sequence=False`.
        question_clip_embeds (`torch.FloatTensor` of shape `(batch, clip_hidden_size)`):
            Raw CLIP text embedding of the question.
        attention_mask (`torch.LongTensor` of shape `(batch, question_length)`, *optional*):
            1 for question tokens, 0 for padding.
        `output_hidden_states`, `output_attentions` and `return_dict` are read from `kwargs` or the config.
        """
        config = self.config
        self._check_inputs(frame_features, patch_features, input_ids, attention_mask, question_clip_embeds)
        batch_size = frame_features.shape[0]
        num_segments, frames_per_segment = config.num_segments, config.frames_per_segment
        dtype = self.fusion_proj.weight.dtype
        frame_features = frame_features.to(dtype)

        patch_states = self.patch_encoder(patch_features.to(dtype))  # [batch, frames, P, hidden]
        patch_states = patch_states.reshape(batch_size, num_segments, frames_per_segment, config.num_patches, -1)
        if self.temporal_encoder is not None:
            patch_states = self.temporal_encoder(patch_states)
        if config.frame_as_patch_candidate:
            # The raw CLIP frame is one more candidate of its frame: "the whole frame" (index P).
            frames = frame_features.reshape(batch_size, num_segments, frames_per_segment, 1, -1)
            patch_states = torch.cat([patch_states, frames], dim=3)  # [batch, S, f, P + 1, hidden]
        question_clip = F.normalize(question_clip_embeds.to(dtype), dim=-1)  # [batch, D]
        segment_states = segment_summaries(frame_features, num_segments, config.segment_normalization)

        question_states = question_mask = None
        if self.question_encoder is not None:
            question_states, question_mask = self.encode_question(input_ids, attention_mask)

        question_length = config.num_question_tokens
        layer_outputs = []
        for ista_layer in self.ista_layers:
            layer_output = ista_layer(
                question_clip, question_states, question_mask, segment_states, patch_states, **kwargs
            )
            layer_outputs.append(layer_output)
            if question_states is not None:
                question_states = layer_output.hidden_states[:, :question_length]
            segment_states = layer_output.hidden_states[:, question_length : question_length + num_segments]

        if config.fusion_pooling == "first":
            summaries = [output.hidden_states[:, 0] for output in layer_outputs]
        else:
            summaries = [output.hidden_states.mean(dim=1) for output in layer_outputs]
        fused = torch.stack(summaries).sum(dim=0)  # [batch, hidden], summed over ISTA layers
        pooled = self.fusion_proj(self.fusion_dropout(fused))

        return MistModelOutput(
            last_hidden_state=layer_outputs[-1].hidden_states,
            pooler_output=pooled,
            segment_indices=tuple(o.segment_indices for o in layer_outputs),
            segment_scores=tuple(o.segment_scores for o in layer_outputs),
            frame_indices=tuple(o.frame_indices for o in layer_outputs),
            patch_indices=tuple(o.patch_indices for o in layer_outputs),
            patch_scores=None if not config.use_patch_selection else tuple(o.patch_scores for o in layer_outputs),
        )


class MistForVideoQuestionAnswering(MistPreTrainedModel):
    """MIST with the answer encoder: scores candidate answers against the fused question-video representation."""

    def __init__(self, config: MistConfig):
        super().__init__(config)
        self.mist = MistModel(config)
        self.answer_encoder = build_text_encoder(config.text_config)
        self.answer_projection = nn.Linear(config.text_config.hidden_size, config.hidden_size)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        if self.mist.question_encoder is None:
            return self.answer_encoder.get_input_embeddings()
        return self.mist.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        if self.mist.question_encoder is None:
            self.answer_encoder.set_input_embeddings(value)
        else:
            self.mist.set_input_embeddings(value)

    def load_text_encoders(self, name_or_path: str, **kwargs) -> "MistForVideoQuestionAnswering":
        """Load a pretrained text encoder (e.g. `"bert-base-uncased"`, `"distilbert-base-uncased"` or a local folder)
        into both text encoders (only the answer encoder with `question_tokens_in_sequence=False`).

        `config.text_config` becomes the pretrained encoder's config; when its width differs, the projections
        that read text states are rebuilt with fresh weights. The checkpoint is read once; the question encoder
        is an independent copy of the answer encoder.
        """
        answer_encoder = without_pooler(AutoModel.from_pretrained(name_or_path, **kwargs))
        text_config = answer_encoder.config
        device, dtype = self.answer_projection.weight.device, self.answer_projection.weight.dtype
        width_changed = text_config.hidden_size != self.config.text_config.hidden_size
        self.config.text_config = text_config
        self.answer_encoder = answer_encoder.to(device=device, dtype=dtype)
        rebuilt = []
        if width_changed:
            self.answer_projection = nn.Linear(text_config.hidden_size, self.config.hidden_size)
            rebuilt.append(self.answer_projection)
        if self.mist.question_encoder is not None:
            # the same pretrained weights, loaded once (one load report), as an independent copy that trains apart
            self.mist.question_encoder = copy.deepcopy(self.answer_encoder)
            if width_changed:
                first_layer = self.mist.ista_layers[0]
                first_layer.question_projection = MistTokenProjection(self.config, text_config.hidden_size)
                rebuilt.append(first_layer.question_projection)
        for module in rebuilt:
            module.apply(self._init_weights)
            module.to(device=device, dtype=dtype)
        return self

    def get_answer_features(
        self, answer_input_ids: torch.LongTensor, answer_attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The answer encoder's pooled output, before the answer projection: `[A, La] -> [A, text_hidden]` or
        `[B, C, La] -> [B, C, text_hidden]`. With a frozen answer encoder this is the same at every training step:
        compute it once and pass it as `answer_features` (the projection still trains)."""
        if answer_input_ids.dim() not in (2, 3):
            raise ValueError(
                f"answer_input_ids has shape {tuple(answer_input_ids.shape)}; expected (num_answers, answer_length) "
                "for a shared answer vocabulary or (batch, num_choices, answer_length) for multiple choice"
            )
        if answer_attention_mask is None:
            answer_attention_mask = torch.ones_like(answer_input_ids)
        _check_shape(
            "answer_attention_mask",
            answer_attention_mask,
            tuple(answer_input_ids.shape),
            "the shape of answer_input_ids",
        )
        leading_shape = answer_input_ids.shape[:-1]
        flat_ids = answer_input_ids.reshape(-1, answer_input_ids.shape[-1])  # [answers, length]
        flat_mask = answer_attention_mask.reshape(flat_ids.shape)
        token_states = self.answer_encoder(input_ids=flat_ids, attention_mask=flat_mask).last_hidden_state
        if self.config.answer_pooling == "cls":
            pooled = token_states[:, 0]
        elif self.config.answer_pooling == "mean_unmasked":
            pooled = token_states.mean(dim=1)  # padding positions included, as the NExT-QA reference
        else:
            weights = flat_mask.to(token_states.dtype).unsqueeze(-1)
            pooled = (token_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return pooled.reshape(*leading_shape, -1)

    def get_answer_embeddings(
        self, answer_input_ids: torch.LongTensor, answer_attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed candidate answers: `[A, La] -> [A, hidden]` or `[B, C, La] -> [B, C, hidden]`.

        Compute once for a fixed open-ended vocabulary and pass the result as `answer_embeds` (not with
        `answer_pooling="mean_unmasked"`, whose result depends on how far the candidates are padded).
        """
        return self.answer_projection(self.get_answer_features(answer_input_ids, answer_attention_mask))

    @can_return_tuple
    def forward(
        self,
        frame_features: torch.Tensor,
        patch_features: torch.Tensor,
        input_ids: torch.LongTensor | None,
        question_clip_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        answer_input_ids: torch.LongTensor | None = None,
        answer_attention_mask: torch.Tensor | None = None,
        answer_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        answer_features: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MistVideoQuestionAnsweringOutput:
        r"""
        frame_features, patch_features, input_ids, question_clip_embeds, attention_mask: as in [`MistModel`].
        answer_input_ids (`torch.LongTensor` of shape `(num_answers, answer_length)` or
            `(batch, num_choices, answer_length)`):
            Candidate answers in the text encoder's vocabulary: one open-ended vocabulary shared by the
            batch, or each question's own choices.
        answer_attention_mask (`torch.LongTensor`, same shape as `answer_input_ids`, *optional*).
        answer_embeds (`torch.FloatTensor` of shape `(num_answers, hidden_size)` or
            `(batch, num_choices, hidden_size)`, *optional*):
            Precomputed `get_answer_embeddings(...)`, instead of `answer_input_ids`.
        labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
            Index of the right candidate for each question; -100 is ignored.
        answer_features (`torch.FloatTensor` of shape `(num_answers, text_hidden_size)` or
            `(batch, num_choices, text_hidden_size)`, *optional*):
            Precomputed `get_answer_features(...)` (the answer encoder's pooled output), instead of
            `answer_input_ids`: the answer projection runs in this forward, so it trains while a frozen
            answer encoder runs once (what `MistTrainer` does).
        `output_hidden_states`, `output_attentions` and `return_dict` are read from `kwargs` or the config.
        """
        answer_inputs = {
            "answer_input_ids": answer_input_ids,
            "answer_features": answer_features,
            "answer_embeds": answer_embeds,
        }
        given = [name for name, value in answer_inputs.items() if value is not None]
        if len(given) != 1:
            got = f" (got {' and '.join(given)})" if given else ""
            raise ValueError(f"Pass exactly one of answer_input_ids, answer_features or answer_embeds{got}")
        outputs = self.mist(
            frame_features,
            patch_features,
            input_ids,
            question_clip_embeds,
            attention_mask=attention_mask,
            return_dict=True,
            **kwargs,
        )
        fused = outputs.pooler_output  # [batch, hidden]
        batch_size = fused.shape[0]
        if answer_features is not None:
            answer_embeds = self.answer_projection(answer_features.to(self.answer_projection.weight.dtype))
        elif answer_embeds is None:
            answer_embeds = self.get_answer_embeddings(answer_input_ids, answer_attention_mask)
        answer_embeds = answer_embeds.to(fused.dtype)
        if answer_embeds.dim() == 2:
            logits = fused @ answer_embeds.t()  # [batch, answers]
        elif answer_embeds.dim() == 3 and answer_embeds.shape[0] == batch_size:
            logits = torch.einsum("bh,bch->bc", fused, answer_embeds)  # [batch, choices]
        else:
            raise ValueError(
                f"answer_embeds has shape {tuple(answer_embeds.shape)}; expected (num_answers, hidden_size) or "
                f"(batch={batch_size}, num_choices, hidden_size)"
            )

        loss = None
        if labels is not None:
            _check_shape("labels", labels, (batch_size,), "(batch,)")
            num_candidates = logits.shape[-1]
            _check_labels(labels, num_candidates)
            loss = F.cross_entropy(logits.float(), labels, ignore_index=-100)
            if self.config.selection_prior_weight > 0:
                prior_loss = clip_selection_prior_loss(
                    self.config, outputs, frame_features, patch_features, question_clip_embeds
                )
                loss = loss + self.config.selection_prior_weight * prior_loss

        return MistVideoQuestionAnsweringOutput(
            loss=loss,
            logits=logits,
            pooler_output=fused,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            segment_indices=outputs.segment_indices,
            segment_scores=outputs.segment_scores,
            frame_indices=outputs.frame_indices,
            patch_indices=outputs.patch_indices,
            patch_scores=outputs.patch_scores,
        )


__all__ = ["MistForVideoQuestionAnswering", "MistModel", "MistPreTrainedModel"]
