"""Thread pools sized by GIT_THETA_MAX_CONCURRENCY; hashing and compression release the GIL."""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from git_theta import config

A = TypeVar("A")
B = TypeVar("B")


def ordered_map(fn: Callable[[A], B], items: Iterable[A], ahead: int | None = None) -> Iterator[B]:
    """fn over items on worker threads, results in input order, at most `ahead` in flight."""
    workers = config.max_concurrency()
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    ahead = ahead or workers + 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="git-theta") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
