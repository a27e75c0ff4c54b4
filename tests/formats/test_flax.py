"""Flax msgpack checkpoints: byte-identical round trips, bfloat16, scalars, chunked arrays."""

import numpy as np
import pytest

from git_theta.errors import CheckpointError
from git_theta.formats import flax as flax_format
from git_theta.formats.flax import FlaxCheckpoint
from tests.helpers import rewrite

serialization = pytest.importorskip("flax.serialization")
jnp = pytest.importorskip("jax.numpy")


def test_nested_state_round_trips_byte_identical():
    state = {
        "params": {
            "Dense_0": {
                "kernel": np.random.default_rng(0).random((3, 4)).astype(np.float32),
                "bias": jnp.zeros(4, jnp.bfloat16),
            }
        },
        "step": 7,
        "lr": 0.5,
        "scale": np.float32(2.5),
        "c": 1 + 2j,
        "hist": [1, 2.5, None],
    }
    raw = serialization.msgpack_serialize(state)
    ck, back = rewrite(FlaxCheckpoint(), raw, "m.msgpack")
    assert back == raw
    assert set(ck.tensors) == {"params/Dense_0/kernel", "params/Dense_0/bias", "scale"}
    assert ck.tensors["params/Dense_0/bias"].dtype == "bfloat16"


def test_chunked_arrays(monkeypatch):
    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 64)
    monkeypatch.setattr(flax_format, "MAX_CHUNK_SIZE", 64)
    state = {"big": np.arange(100, dtype=np.float32).reshape(10, 10)}
    raw = serialization.msgpack_serialize(state)
    ck, back = rewrite(FlaxCheckpoint(), raw, "m.msgpack")
    assert ck.tensors["big"].shape == (10, 10)
    assert back == raw
    np.testing.assert_array_equal(serialization.msgpack_restore(back)["big"], state["big"])


def test_garbage_is_refused():
    with pytest.raises(CheckpointError, match="not a Flax msgpack checkpoint"):
        FlaxCheckpoint().read(memoryview(b"\xc1\xc1\xc1"), "m.msgpack")
