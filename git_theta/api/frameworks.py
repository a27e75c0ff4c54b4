"""Tensors of any framework <-> RawTensor, and nested dicts <-> flat names joined by '/'."""

from collections.abc import Mapping

import numpy as np

from git_theta import memory
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


def to_raw(value, name: str) -> RawTensor:
    """A framework tensor (torch, numpy, JAX, TensorFlow) as raw bytes, without a copy where the
    framework allows (a device tensor comes to the host)."""
    mod = _framework(value)
    if mod == "torch":
        import torch

        t = value.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        data = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else np.zeros(0, np.uint8)
        return RawTensor(dtype, tuple(t.shape), memoryview(data))
    if mod == "tensorflow":
        value = value.numpy()
    elif mod in ("jax", "jaxlib"):
        value = np.asarray(value)
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        try:
            return RawTensor.from_numpy(array)
        except KeyError:
            raise ThetaError(f"parameter {name!r}: dtype {array.dtype} cannot be stored") from None
    raise ThetaError(f"parameter {name!r}: {type(value).__name__} is not a tensor of a supported framework")


def on_accelerator(value) -> bool:
    """A torch tensor on a device other than the CPU (copied to the host by device_copy)."""
    return _framework(value) == "torch" and value.device.type != "cpu"


def device_copy(value, buf: np.ndarray) -> RawTensor:
    """Copy an accelerator's torch tensor straight into `buf` (host bytes of its size): one copy,
    not a host tensor and then a copy of it."""
    t = value.detach()
    if t.numel():
        import torch

        torch.from_numpy(buf).view(t.dtype).view(t.shape).copy_(t)
    return RawTensor(str(t.dtype).removeprefix("torch."), tuple(t.shape), memoryview(buf))


def _framework(value) -> str:
    return type(value).__module__.split(".")[0]


def from_raw(t: RawTensor, framework: str):
    """A stored tensor in the framework asked for (owning its memory)."""
    if framework == "numpy":
        own = memory.empty(t.shape, t.numpy().dtype)
        np.copyto(own, t.numpy())
        return own
    if framework == "torch":
        import torch

        dt = getattr(torch, t.dtype)
        if not t.nbytes:
            return torch.empty(t.shape, dtype=dt)
        own = memory.empty(t.nbytes, np.uint8)  # the stored value may be shared: a copy of its own
        np.copyto(own, np.frombuffer(t.data, dtype=np.uint8))
        return torch.from_numpy(own).view(dt).reshape(t.shape)
    if framework == "jax":
        import jax.numpy as jnp

        return jnp.asarray(t.numpy())
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(t.numpy())
    raise ThetaError(f"unknown framework {framework!r}; use one of {', '.join(FRAMEWORKS)}")
