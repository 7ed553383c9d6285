"""Decode videos in background threads while the caller encodes the ones decoded before.

Threads rather than processes: PyAV releases the GIL while it demuxes, decodes and converts
frames, and threads hand the decoded arrays over without pickling tens of megabytes per video.
"""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def decode_ahead(
    items: Iterable[Item], decode: Callable[[Item], Result], num_workers: int = 4, max_pending: int = 8
) -> Iterator[tuple[Item, Result | None, Exception | None]]:
    """Yield `(item, decode(item), None)` in input order, or `(item, None, error)` when decoding raised.

    At most `max_pending` items are decoded ahead of the consumer, which bounds memory.
    """
    items = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, num_workers), thread_name_prefix="decode") as pool:
        pending = deque((item, pool.submit(decode, item)) for item in islice(items, max(1, max_pending)))
        while pending:
            item, future = pending.popleft()
            try:
                result, error = future.result(), None
            except Exception as caught:  # a bad video is reported by the caller, the others go on
                result, error = None, caught
            for next_item in islice(items, 1):
                pending.append((next_item, pool.submit(decode, next_item)))
            yield item, result, error


def batched(iterable: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Lists of `size` consecutive items (the last one may be shorter)."""
    iterator = iter(iterable)
    while batch := list(islice(iterator, size)):
        yield batch
