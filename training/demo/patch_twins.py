"""The twins that bound MIST on the patch task: what each one sees of the video, and how it is built.

* `question_only`: both feature tensors zeroed (the collator's `zero_video`);
* `summaries_only`: the patch features zeroed, so every patch token carries its grid position and nothing
  else; the frame features (hence the segment summaries) are untouched;
* `all_patches`: every segment kept, every patch of every frame (no selection; the segments' top-k of all of
  them, so in the order the segment selector ranks them): the upper bound selection should approach at a
  fraction of the sequence;
* `oracle`: MIST's own architecture whose selectors are handed the evidence: the asked object's segment is
  the top kept segment and its two cells (the object's and the item's) are the top kept patches of every
  kept frame, the rest ranked by the selectors' own scores. It separates "cannot select" from "cannot
  reason over what it selected".
"""

import torch
import torch.nn.functional as F

from modeling_mist.modeling_mist import MistSelector

from ..collator import MistDataCollator
from ..data import ExampleBatch, MistQuestionDataset

TWINS = ("mist", "question_only", "summaries_only", "all_patches", "oracle")


def twin_config_overrides(twin: str, num_segments: int) -> str | None:
    """The MistConfig overrides a twin needs on top of the run's (only `all_patches` changes the model)."""
    if twin not in TWINS:
        raise ValueError(f"unknown twin {twin!r}; expected one of {', '.join(TWINS)}")
    if twin == "all_patches":
        # top-k of all S segments is all of them, in the selector's order, in training too (a Gumbel rule's S
        # draws with replacement would repeat some segments and drop others)
        return f"use_patch_selection=False,num_selected_segments={num_segments},train_selection=topk"
    return None


class EvidenceDataset(torch.utils.data.Dataset):
    """A `MistQuestionDataset` whose examples also carry their evidence (`evidence_segment`, `evidence_cells`),
    for the oracle twin's collator."""

    def __init__(self, dataset: MistQuestionDataset):
        self.dataset = dataset
        self.report = dataset.report
        self.segments = [row[0] for row in dataset.column("evidence_segments")]
        self.cells = dataset.column("evidence_cells")

    def __len__(self) -> int:
        return len(self.dataset)

    def column(self, name: str, default=None) -> list:
        return self.dataset.column(name, default)

    def _with_evidence(self, example: dict, index: int) -> dict:
        return {**example, "evidence_segment": self.segments[index], "evidence_cells": list(self.cells[index])}

    def __getitem__(self, index: int) -> dict:
        return self._with_evidence(self.dataset[index], index)

    def __getitems__(self, indices: list[int]) -> ExampleBatch:
        batch = self.dataset.__getitems__(indices)
        examples = [self._with_evidence(example, index) for example, index in zip(batch, indices)]
        return ExampleBatch(examples, batch.stacked)


class TwinCollator:
    """The run's collator, then what the twin changes: patch features zeroed (`summaries_only`) or the
    evidence passed as `evidence_segment [B]` / `evidence_cells [B, 2]` (`oracle`)."""

    def __init__(self, collator: MistDataCollator, twin: str):
        self.collator = collator
        self.twin = twin

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collator(examples)
        if self.twin == "summaries_only":
            batch["patch_features"] = torch.zeros_like(batch["patch_features"])
        elif self.twin == "oracle":
            batch["evidence_segment"] = torch.tensor([example["evidence_segment"] for example in examples])
            batch["evidence_cells"] = torch.tensor([example["evidence_cells"] for example in examples])
        return batch


class OracleSelector(MistSelector):
    """A selector that ranks the candidates in `forced` (`[batch, candidates]` bool, set before each forward)
    above all others, the rest by its own scores; a hard gather, no gradient through the choice."""

    forced: torch.Tensor | None = None

    def forward(self, question, keys, values):
        query = self.query_norm(self.query_proj(question))  # [batch, hidden]
        keys = self.key_norm(self.key_proj(keys))  # [batch, groups, candidates, hidden]
        scores = torch.einsum("bgch,bh->bgc", keys, query).softmax(dim=-1)  # [batch, groups, candidates]
        batch_size, num_groups, num_candidates = scores.shape
        forced = self.forced.to(scores.dtype)  # [batch, candidates], the same for every group
        indices = (scores + forced[:, None]).topk(self.num_selected, dim=-1).indices  # [batch, groups, k]
        flat_values = values.reshape(batch_size, num_groups, num_candidates, -1)
        gather_index = indices[..., None].expand(-1, -1, -1, flat_values.shape[-1])
        selected = flat_values.gather(2, gather_index)  # [batch, groups, k, rest]
        return selected.reshape(batch_size, num_groups, self.num_selected, *values.shape[3:]), indices, scores


def install_oracle(model) -> None:
    """Swap every selector of `model` for an `OracleSelector` (same weights) and make the model read
    `evidence_segment` / `evidence_cells` from its inputs (a forward pre-hook takes them out of the kwargs)."""
    selectors = []
    for layer in model.mist.ista_layers:
        for name in ("segment_selector", "patch_selector"):
            selector = getattr(layer, name)
            if selector is None:
                continue
            selector.__class__ = OracleSelector  # same parameters and buffers, the oracle's forward
            selectors.append((name, selector))
    config = model.config

    def hand_over_evidence(module, args, kwargs):
        segments, cells = kwargs.pop("evidence_segment"), kwargs.pop("evidence_cells")
        segment_mask = F.one_hot(segments, config.num_segments).bool()  # [batch, S]
        cell_mask = F.one_hot(cells, config.num_patch_candidates).sum(dim=1).bool()  # [batch, C]
        for name, selector in selectors:
            selector.forced = segment_mask if name == "segment_selector" else cell_mask
        return args, kwargs

    model.register_forward_pre_hook(hand_over_evidence, with_kwargs=True)
