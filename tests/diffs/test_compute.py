"""Diff numbers against numpy on known changes; what needs only metadata reads no tensor."""

import numpy as np
import pytest

from git_theta.diffs import render
from git_theta.diffs.compute import compare, numbers
from git_theta.diffs.sides import ModelSide, ParamInfo
from git_theta.tensor import RawTensor


def raw(a: np.ndarray) -> RawTensor:
    return RawTensor.from_numpy(a)


def test_numbers_match_numpy():
    rng = np.random.default_rng(0)
    old = rng.standard_normal((300, 200)).astype(np.float32)
    new = old.copy()
    new[:30] += rng.standard_normal((30, 200)).astype(np.float32) * 0.1
    n = numbers(raw(old), raw(new))
    o, w = old.astype(np.float64), new.astype(np.float64)
    d = w - o
    assert n.changed_fraction == pytest.approx(np.count_nonzero(old != new) / old.size)
    assert n.l2 == pytest.approx(np.linalg.norm(d))
    assert n.relative == pytest.approx(np.linalg.norm(d) / np.linalg.norm(o))
    assert n.max_abs == pytest.approx(np.abs(d).max())
    assert n.cosine == pytest.approx(o.ravel() @ w.ravel() / (np.linalg.norm(o) * np.linalg.norm(w)))


def test_numbers_across_blocks_and_dtypes(monkeypatch):
    import git_theta.diffs.compute as compute

    monkeypatch.setattr(compute, "_BLOCK", 7)  # force several blocks
    old = np.arange(50, dtype=np.int32)
    new = old.copy()
    new[[3, 40]] = [-5, 100]
    n = numbers(raw(old), raw(new))
    assert n.changed_fraction == pytest.approx(2 / 50)
    assert n.max_abs == 60
    assert n.l2 == pytest.approx(np.sqrt(8**2 + 60**2))


def test_zero_old_norm_and_nan_bits():
    n = numbers(raw(np.zeros(4, np.float32)), raw(np.ones(4, np.float32)))
    assert n.relative is None and n.cosine is None and n.l2 == 2.0
    nan = np.array([np.nan, 1.0], np.float32)
    same = numbers(raw(nan), raw(nan.copy()))
    assert same.changed_fraction == 0.0


class CountingSide(ModelSide):
    def __init__(self, params):
        super().__init__("m.pt", params, "pytorch")
        self.loaded = []

    def load(self, name):
        self.loaded.append(name)
        return raw(
            np.ones(self.params[name].shape, np.float32) * (2 if self.params[name].hash == "h2" else 1)
        )


def test_only_modified_parameters_are_read():
    old = CountingSide(
        {
            "a": ParamInfo("float32", (2,), "h1", "dense", "o1", 10),
            "b": ParamInfo("float32", (2,), "h1", "dense", "o2", 10),
            "gone": ParamInfo("float32", (1,), "x", "dense", "o3", 5),
        }
    )
    new = CountingSide(
        {
            "a": ParamInfo("float32", (2,), "h1", "dense", "o1", 10),
            "b": ParamInfo("float32", (2,), "h2", "dense", "o4", 12),
            "c": ParamInfo("float32", (3,), "h3", "dense", "o5", 7),
        }
    )
    d = compare(old, new)
    assert d.counts == {"added": 1, "removed": 1, "modified": 1}
    assert old.loaded == ["b"] and new.loaded == ["b"]
    assert d.stored_bytes == 19 and d.stored_scope == "file"  # objects o4 and o5 are new to this file
    wider = compare(old, new, with_numbers=False, known={"o5"})  # o5: stored by another file before
    assert wider.stored_bytes == 12 and wider.stored_scope == "change"
    assert render.stored_text(wider) == "12 B stored by this change"
    assert (
        render.stored_text(compare(old, new, False, known={"o4", "o5"}))
        == "nothing new stored by this change"
    )
    assert d.changes[0].numbers.relative == pytest.approx(1.0)
    old.loaded.clear()
    compare(old, new, with_numbers=False)
    assert old.loaded == []
