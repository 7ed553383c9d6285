"""One cache for what an answer set costs to encode: MIST scores every question against its answer candidates,
and an open-ended vocabulary is the same for every question of a dataset.

The processor keeps the vocabulary's tokens, the pipeline and evaluation its embeddings, training with a
frozen answer encoder that encoder's output: each through an `AnswerCache`, whose key
(`AnswerCache.key`) names what the value depends on.
"""

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import torch

Value = TypeVar("Value")


def _same_tensor(first: torch.Tensor | None, second: torch.Tensor | None) -> bool:
    """Equal device, dtype, shape and values (tensors on two devices are never compared), or both None."""
    if first is None or second is None:
        return first is second
    where = (first.device, first.dtype, first.shape)
    return where == (second.device, second.dtype, second.shape) and torch.equal(first, second)


@dataclass(frozen=True, eq=False)
class AnswerKey:
    """What an answer set's encoding depends on (`AnswerCache.key` builds it)."""

    texts: tuple[str, ...] | None  # the candidate texts, or
    tokens: tuple[torch.Tensor | None, ...] | None  # their `answer_input_ids` (and `answer_attention_mask`)
    encoder: weakref.ref | None  # what encodes them, by identity (weakly: the cache keeps no model alive)
    placement: tuple | None  # (device, dtype) of the encoder's weights
    version: object  # anything else it depends on: the training step of weights that train, a token limit

    def matches(self, other: "AnswerKey") -> bool:
        return (
            (self.texts, self.encoder, self.placement, self.version)
            == (other.texts, other.encoder, other.placement, other.version)
            and (self.tokens is None) == (other.tokens is None)
            and (self.tokens is None or len(self.tokens) == len(other.tokens))
            and all(map(_same_tensor, self.tokens or (), other.tokens or ()))
        )


class AnswerCache:
    """The value computed for the last key seen; computed again only when the key changes.

        cache = AnswerCache()
        key = AnswerCache.key(vocabulary, encoder=model)
        embeddings = cache.get(key, lambda: model.get_answer_embeddings(...))
    """

    def __init__(self):
        self._key = None
        self._value = None

    def __getstate__(self) -> dict:
        """Pickled or deep-copied (a processor in a DataLoader worker, `copy.deepcopy`): empty, computed again."""
        return {"_key": None, "_value": None}

    @staticmethod
    def key(answers: Sequence[str] | torch.Tensor | tuple, encoder: object = None, version: object = None) -> AnswerKey:
        """What an answer set's encoding depends on.

        Args:
            answers: the candidate texts, or their tokens (`answer_input_ids`, or a tuple of it and its mask).
            encoder: what encodes them (a module, a tokenizer): compared by identity, and for a module the device
                and dtype of its weights too, so that a moved or cast model encodes again.
            version: anything else the encoding depends on: the training step of weights that train, a token limit.
        """
        if isinstance(answers, torch.Tensor):
            answers = (answers,)
        tensors = isinstance(answers, tuple) and bool(answers) and isinstance(answers[0], torch.Tensor)
        placement = None
        if isinstance(encoder, torch.nn.Module):
            weight = next(encoder.parameters(), None)
            placement = None if weight is None else (weight.device, weight.dtype)
        return AnswerKey(
            texts=None if tensors else tuple(answers),
            tokens=answers if tensors else None,
            encoder=None if encoder is None else weakref.ref(encoder),
            placement=placement,
            version=version,
        )

    def get(self, key: AnswerKey, compute: Callable[[], Value]) -> Value:
        """The value for `key`: the cached one when `key` matches the last key seen, else `compute()` (then cached)."""
        if self._key is None or not self._key.matches(key):
            value = compute()
            # the tokens copied, so that a caller reusing its tensors in place cannot change the stored key
            tokens = key.tokens and tuple(None if part is None else part.detach().clone() for part in key.tokens)
            self._key, self._value = replace(key, tokens=tokens), value
        return self._value


__all__ = ["AnswerCache", "AnswerKey"]
