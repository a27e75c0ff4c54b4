"""git-theta: version machine-learning checkpoints in git, parameter by parameter."""

__version__ = "0.3.0"


def save_to_git(state_dict, path, commit_msg, tag=None, checkpoint_type="pytorch", checkout=False):
    """Write `state_dict` to `path`, `git add` and commit it (the original git-theta's API)."""
    from git_theta.api.compat import save_to_git as impl

    return impl(state_dict, path, commit_msg, tag=tag, checkpoint_type=checkpoint_type, checkout=checkout)


def load_from_git(sha_or_tag, path, checkpoint_type="pytorch", checkout=False):
    """The state dict stored at `path` in commit `sha_or_tag` (the original git-theta's API)."""
    from git_theta.api.compat import load_from_git as impl

    return impl(sha_or_tag, path, checkpoint_type=checkpoint_type, checkout=checkout)


def __getattr__(name: str):
    """git_theta.save / load / log / diff, imported on first use (the CLI stays fast)."""
    if name in ("save", "load", "log", "diff", "SaveHandle", "wait_for_saves"):
        from git_theta import api

        return getattr(api, name)
    if name == "updates":  # the original's `git_theta.updates.get_update_handler`, after `import git_theta`
        import importlib

        return importlib.import_module("git_theta.updates")
    raise AttributeError(f"module 'git_theta' has no attribute {name!r}")
