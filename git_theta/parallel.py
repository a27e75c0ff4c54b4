"""Thread pools sized by GIT_THETA_MAX_CONCURRENCY; hashing and compression release the GIL.

concurrent.futures is imported when a pool starts: with the `logging` it imports, ~6 ms of every
pre-push hook here, which starts none."""

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from git_theta import config

A = TypeVar("A")
B = TypeVar("B")
_job = threading.local()  # .busy: whether the job this thread runs shares the cores with others


def among_others() -> bool:
    """Whether this runs as one of several jobs ordered_map keeps in flight at once: work inside
    it then gains little from workers of its own (all cores are busy with its peers)."""
    return getattr(_job, "busy", False)


def ordered_map(
    fn: Callable[[A], B],
    items: Iterable[A],
    ahead: int | None = None,
    cost: Callable[[A], int] | None = None,
    budget: int | None = None,
) -> Iterator[B]:
    """fn over items on worker threads, results in input order, at most `ahead` in flight and,
    with `cost` and `budget`, at most `budget` of cost in flight (always at least one item)."""
    workers = config.max_concurrency()
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    ahead = ahead or workers + 1
    from concurrent.futures import ThreadPoolExecutor

    def job(item: A) -> B:
        _job.busy = ahead > 1
        try:
            return fn(item)
        finally:
            _job.busy = False

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="git-theta") as pool:
        pending: deque = deque()
        in_flight = 0
        try:
            for item in items:
                c = cost(item) if cost is not None and budget is not None else 0
                while pending and (len(pending) >= ahead or in_flight + c > (budget or 0) and c):
                    fut, done = pending.popleft()
                    in_flight -= done
                    yield fut.result()
                pending.append((pool.submit(job, item), c))
                in_flight += c
            while pending:
                yield pending.popleft()[0].result()
        finally:
            for fut, _ in pending:
                fut.cancel()
