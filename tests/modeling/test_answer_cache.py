"""`AnswerCache`: one cache for an answer set's tokens, encoder output or embeddings, keyed by what they depend on."""

import copy
import pickle

import torch

from modeling_mist.answer_cache_mist import AnswerCache


class Counted:
    """A computation that counts its calls and returns a fresh object each time."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return [self.calls]


def test_texts_are_computed_once_until_they_change():
    cache, compute = AnswerCache(), Counted()
    first = cache.get(AnswerCache.key(["cup", "ball"]), compute)
    assert cache.get(AnswerCache.key(("cup", "ball")), compute) is first and compute.calls == 1
    assert cache.get(AnswerCache.key(["ball", "cup"]), compute) == [2]  # another order is another answer set
    assert cache.get(AnswerCache.key(["ball", "cup"], version=38), compute) == [3]  # another token limit


def test_tokens_are_compared_by_value_and_kept_as_a_copy():
    cache, compute = AnswerCache(), Counted()
    ids, mask = torch.tensor([[1, 2], [3, 4]]), torch.ones(2, 2, dtype=torch.long)
    first = cache.get(AnswerCache.key((ids, mask)), compute)
    assert cache.get(AnswerCache.key((ids.clone(), mask.clone())), compute) is first
    ids[0, 0] = 7  # the caller reuses its tensor: the stored key does not change with it
    assert cache.get(AnswerCache.key((ids, mask)), compute) == [2]
    assert cache.get(AnswerCache.key((ids, mask.clone().fill_(0))), compute) == [3]  # the mask counts
    assert cache.get(AnswerCache.key((ids, None)), compute) == [4]
    assert cache.get(AnswerCache.key((ids.long()[:1], None)), compute) == [5]  # another shape
    assert cache.get(AnswerCache.key(ids[:1]), compute) == [6]  # ids alone: not the (ids, None) of before


def test_the_encoder_its_placement_and_version_are_part_of_the_key():
    cache, compute = AnswerCache(), Counted()
    encoder = torch.nn.Linear(2, 2)
    first = cache.get(AnswerCache.key(["cup"], encoder=encoder, version=0), compute)
    assert cache.get(AnswerCache.key(["cup"], encoder=encoder, version=0), compute) is first
    assert cache.get(AnswerCache.key(["cup"], encoder=encoder, version=1), compute) == [2]  # the weights trained
    twin = copy.deepcopy(encoder)  # the same weights, another model
    assert cache.get(AnswerCache.key(["cup"], encoder=twin, version=1), compute) == [3]
    twin.to(torch.float64)  # cast: encoded again
    assert cache.get(AnswerCache.key(["cup"], encoder=twin, version=1), compute) == [4]
    assert cache.get(AnswerCache.key(["cup"], encoder=twin, version=1), compute) == [4]


def test_a_copied_or_pickled_cache_is_empty_and_keeps_no_model():
    cache, compute = AnswerCache(), Counted()
    encoder = torch.nn.Linear(2, 2)
    cache.get(AnswerCache.key(["cup"], encoder=encoder), compute)
    for copied in (copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
        assert copied.get(AnswerCache.key(["cup"], encoder=encoder), compute) == [compute.calls]
    assert compute.calls == 3
    del encoder  # a weak reference: the cache does not keep the model alive, and a new model is encoded again
    assert cache.get(AnswerCache.key(["cup"], encoder=torch.nn.Linear(2, 2)), compute) == [4]
