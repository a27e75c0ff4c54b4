"""Storing and rebuilding tensors through update types against a real store."""

import numpy as np

from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor
from git_theta.updates import load_entry
from git_theta.updates.storing import store_tensor


def raw(array: np.ndarray, dtype: str | None = None) -> RawTensor:
    return RawTensor.from_numpy(np.ascontiguousarray(array), dtype)


def put(
    store, array, previous: ParamEntry | None = None, kind: str = "auto", side=None, dtype=None
) -> ParamEntry:
    return store_tensor(raw(array, dtype), store, "p", previous, kind, side)


def back(store, entry: ParamEntry) -> bytes:
    return bytes(load_entry(entry, store, "p").data)


def shape_entry(array: np.ndarray, kind: str) -> ParamEntry:
    t = raw(array)
    return ParamEntry(t.dtype, t.shape, "", "0" * 64, 0, kind)
