"""ordered_map: results in order, and a cost budget bounds what is in flight (checkout memory)."""

import threading
import time

from git_theta import parallel


def test_budget_bounds_the_cost_in_flight(monkeypatch):
    monkeypatch.setenv("GIT_THETA_MAX_CONCURRENCY", "4")
    lock, state = threading.Lock(), {"now": 0, "peak": 0}
    sizes = [50, 10, 10, 10, 80, 10, 10, 30, 30, 30]

    def work(size):
        with lock:
            state["now"] += size
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= size
        return size

    out = list(parallel.ordered_map(work, sizes, ahead=8, cost=lambda s: s, budget=60))
    assert out == sizes
    assert state["peak"] <= 80  # never more than the budget, or one item larger than it alone


def test_without_a_budget_ahead_rules():
    assert list(parallel.ordered_map(lambda x: x * 2, range(20), ahead=3)) == [x * 2 for x in range(20)]


def test_jobs_know_when_they_share_the_cores(monkeypatch):
    """among_others: true inside a job of a map keeping several in flight, false with one at a
    time (low-memory mode: the job's own work should use the cores) and outside any map."""
    monkeypatch.setenv("GIT_THETA_MAX_CONCURRENCY", "2")
    assert not parallel.among_others()
    assert set(parallel.ordered_map(lambda _: parallel.among_others(), range(6), ahead=3)) == {True}
    assert set(parallel.ordered_map(lambda _: parallel.among_others(), range(6), ahead=1)) == {False}
    assert not parallel.among_others()
