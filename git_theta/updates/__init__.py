"""Update types: how a parameter's new value is stored relative to what came before (plug-ins)."""

from git_theta import config, plugins
from git_theta.updates.chain import load_entry
from git_theta.updates.chain import objects as objects_of

__all__ = ["get_update_handler", "load_entry", "objects_of"]


def get_update_handler(update_type: str | None = None) -> type:
    """The update class registered as `update_type` (default: GIT_THETA_UPDATE_TYPE, else auto).

    The original git-theta's entry point, kept so its users' scripts run unchanged: side-loaded
    types offer its `format_update(...)` helper, which returns a side file's parts as numpy arrays.
    """
    return plugins.updates.get(update_type or config.get("update_type") or "auto")
