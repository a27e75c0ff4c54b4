"""Tensors of any framework <-> RawTensor, and nested dicts <-> flat names joined by '/'."""

from collections.abc import Mapping

import numpy as np

from git_theta.errors import ThetaError
from git_theta.tensor import RawTensor

FRAMEWORKS = ("torch", "numpy", "jax", "tensorflow")


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """{'a': {'b': x}} -> {'a/b': x}; a flat state dict stays as it is."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "/"))
        else:
            out[name] = value
    return out


def unflatten(flat: Mapping) -> dict:
    """Inverse of flatten."""
    out: dict = {}
    for name, value in flat.items():
        node = out
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def to_raw(value, name: str, copy: bool = False) -> RawTensor:
    """A framework tensor (torch, numpy, JAX, TensorFlow) as raw bytes; `copy` snapshots it."""
    mod = type(value).__module__.split(".")[0]
    if mod == "torch":
        import torch

        t = value.detach()
        if t.device.type != "cpu":
            t = t.cpu()  # a device tensor is copied to the host anyway
        elif copy:
            t = t.clone()
        t = t.contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        data = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else np.zeros(0, np.uint8)
        return RawTensor(dtype, tuple(t.shape), memoryview(data))
    if mod == "tensorflow":
        value = value.numpy()
    elif mod in ("jax", "jaxlib"):
        value = np.asarray(value)
    if isinstance(value, np.ndarray | np.generic):
        array = np.array(value, copy=True) if copy else np.asarray(value)
        try:
            return RawTensor.from_numpy(array)
        except KeyError:
            raise ThetaError(f"parameter {name!r}: dtype {array.dtype} cannot be stored") from None
    raise ThetaError(f"parameter {name!r}: {type(value).__name__} is not a tensor of a supported framework")


def from_raw(t: RawTensor, framework: str):
    """A stored tensor in the framework asked for (owning its memory)."""
    if framework == "numpy":
        return t.numpy().copy()
    if framework == "torch":
        import torch

        dt = getattr(torch, t.dtype)
        if not t.nbytes:
            return torch.empty(t.shape, dtype=dt)
        return torch.frombuffer(bytearray(t.data), dtype=dt).reshape(t.shape)
    if framework == "jax":
        import jax.numpy as jnp

        return jnp.asarray(t.numpy())
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(t.numpy())
    raise ThetaError(f"unknown framework {framework!r}; use one of {', '.join(FRAMEWORKS)}")
