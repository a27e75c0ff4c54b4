"""Settings from environment variables (the original git-theta's names) or git config `theta.*`."""

import os
from functools import lru_cache

# setting -> (environment variable, git config key, default)
SETTINGS: dict[str, tuple[str, str, str | None]] = {
    "checkpoint_type": ("GIT_THETA_CHECKPOINT_TYPE", "theta.checkpointType", None),
    "update_type": ("GIT_THETA_UPDATE_TYPE", "theta.updateType", "auto"),
    "update_data_path": ("GIT_THETA_UPDATE_DATA_PATH", "theta.updateDataPath", None),
    "max_concurrency": ("GIT_THETA_MAX_CONCURRENCY", "theta.maxConcurrency", "-1"),
    "low_memory": ("GIT_THETA_LOW_MEMORY", "theta.lowMemory", "0"),
    "low_memory_share": ("GIT_THETA_LOW_MEMORY_SHARE", "theta.lowMemoryShare", "0.5"),
    "log_level": ("GIT_THETA_LOG_LEVEL", "theta.logLevel", "WARNING"),
    "parameter_atol": ("GIT_THETA_PARAMETER_ATOL", "theta.parameterAtol", None),
    "parameter_rtol": ("GIT_THETA_PARAMETER_RTOL", "theta.parameterRtol", None),
    "skip_smudge": ("GIT_THETA_SKIP_SMUDGE", "theta.skipSmudge", "0"),
    "merge_interactive": ("GIT_THETA_MERGE_INTERACTIVE", "theta.merge.interactive", "1"),
    "fsync": ("GIT_THETA_FSYNC", "theta.fsync", "1"),  # objects reach the disk before they count
    "direct_io": ("GIT_THETA_DIRECT_IO", "theta.directIo", "auto"),  # objects skip the page cache
    # checkouts that run post-checkout: the hook writes large models itself (filter/deferred.py)
    "direct_checkout": ("GIT_THETA_DIRECT_CHECKOUT", "theta.directCheckout", "auto"),
    # a checkpoint the filter wrote keeps a second link for git's next unlink (filter/replaced.py)
    "keep_replaced": ("GIT_THETA_KEEP_REPLACED", "theta.keepReplaced", "auto"),
    # background saves of one path that may wait behind the one running before save() blocks
    "save_queue": ("GIT_THETA_SAVE_QUEUE", "theta.saveQueue", "1"),
    # unreferenced objects younger than this are spared by prune (git's date syntax; default:
    # gc.pruneExpire, else git's own 2.weeks.ago)
    "prune_expire": ("GIT_THETA_PRUNE_EXPIRE", "theta.pruneExpire", None),
    # rebuilt tensors are checked against their metadata's content hash: once per entry (default),
    # always, or 0 (storage.verified; fsck always checks)
    "verify": ("GIT_THETA_VERIFY", "theta.verify", "once"),
    # bounded: a version's fetch closure stays within its raw size (clones fetch no more than Git
    # LFS); smallest: the smallest exact change whatever it builds on (see updates.policy)
    "storage_policy": ("GIT_THETA_STORAGE_POLICY", "theta.storagePolicy", "bounded"),
    # how new objects are compressed: planes (byte planes + zstd where the dtype allows, the
    # default) or blosc (the zarr blosc layout of earlier versions); either is always read
    "codec": ("GIT_THETA_CODEC", "theta.codec", "planes"),
}


@lru_cache(maxsize=1)
def _git_config() -> dict[str, str]:
    from git_theta.git import repo

    snapshot = repo.config_snapshot()  # the filter process's one read of git config
    if snapshot is None:
        try:
            snapshot = repo.config_list(["--get-regexp", r"^theta\."]) or {}
        except OSError:
            return {}
    return {k.lower(): v for k, v in snapshot.items() if k.startswith("theta.")}


def get(name: str) -> str | None:
    """The setting's value: environment first, then git config, then the default."""
    env, key, default = SETTINGS[name]
    if env in os.environ and os.environ[env] != "":
        return os.environ[env]
    return _git_config().get(key.lower(), default)


def get_bool(name: str) -> bool:
    value = (get(name) or "").strip().lower()
    return value in ("1", "true", "yes", "on")


def get_switch(name: str) -> bool | None:
    """An on/off/auto setting: True for 1/true/yes/on, False for 0/false/no/off, None otherwise."""
    value = (get(name) or "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def get_float(name: str) -> float | None:
    value = get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        from git_theta.errors import ThetaError

        raise ThetaError(f"{SETTINGS[name][0]}={value!r} is not a number") from None


def max_concurrency() -> int:
    """Worker threads for hashing and compression: GIT_THETA_MAX_CONCURRENCY, <=0 means all cores."""
    try:
        n = int(get("max_concurrency") or "-1")
    except ValueError:
        n = -1
    return n if n > 0 else (os.cpu_count() or 1)


def get_int(name: str, minimum: int = 0) -> int:
    """An integer setting, at least `minimum`; a clear error when it is not a number."""
    value = get(name)
    try:
        return max(minimum, int(value if value not in (None, "") else SETTINGS[name][2]))
    except ValueError:
        from git_theta.errors import ThetaError

        raise ThetaError(f"{SETTINGS[name][0]}={value!r} is not a whole number") from None
