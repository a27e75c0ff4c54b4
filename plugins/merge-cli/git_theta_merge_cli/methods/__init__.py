"""Merge methods: plug-ins in the entry point group `git_theta_merge_cli.methods`."""

from git_theta.plugins import Registry

GROUP = "git_theta_merge_cli.methods"
_BUILTIN = {
    "average": "linear:Average",
    "task-arithmetic": "linear:TaskArithmetic",
    "dare-task-arithmetic": "linear:DareTaskArithmetic",
    "model-stock": "linear:ModelStock",
    "ties": "ties:Ties",
    "breadcrumbs": "ties:Breadcrumbs",
    "della": "ties:Della",
    "fisher": "weighted:Fisher",
    "reg-mean": "weighted:RegMean",
    "mats": "weighted:Mats",
    "covariance-mats": "weighted:CovarianceMats",
    "slerp": "spherical:Slerp",
    "multi-slerp": "spherical:MultiSlerp",
}
methods: Registry = Registry(
    GROUP, "merge method", {k: f"git_theta_merge_cli.methods.{v}" for k, v in _BUILTIN.items()}
)


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
