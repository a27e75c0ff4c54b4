"""Merge methods: plug-ins in the entry point group `git_theta_merge_cli.methods` (ours listed in
methods/builtin.py)."""

from git_theta.plugins import Registry
from git_theta_merge_cli.methods.builtin import GROUP, METHODS

methods: Registry = Registry(GROUP, "merge method", METHODS)


def get(name: str):
    """An instance of the method called `name`: `lora-X` wraps X, `X-gpu` means X on CUDA."""
    from git_theta_merge_cli.methods.lora import LoraVariant

    base = name[: -len("-gpu")] if name.endswith("-gpu") else name
    if base.startswith("lora-"):
        return LoraVariant(methods.get(base[len("lora-") :])())
    return methods.get(base)()


def names() -> list[str]:
    """Every method name a user can give (lora- variants included)."""
    plain = methods.names()
    return plain + [f"lora-{n}" for n in plain if not methods.get(n).aux_kind]
