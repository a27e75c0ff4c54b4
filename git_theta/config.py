"""Every git-theta setting, declared once (environment variable, git config key, type, default,
meaning), and the typed getters that read and check them: the environment first (the original
git-theta's names), then git config `theta.*`, then the default. A bad value is one ThetaError
line naming where it came from and what is accepted. Kept light: the filter and the pre-push
hook import it (no dataclasses, typing or numpy)."""

import os
from functools import lru_cache

# kinds: how a value is read (see _parse)
TEXT, FLAG, SWITCH, INT, NUMBER = "text", "flag", "switch", "int", "number"
CHOICE, LEVEL, LIST = "choice", "level", "list"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# GIT_THETA_LOG_LEVEL's names (logging's, without importing it)
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50, "FATAL": 50}


class Setting:
    """One setting: its environment variable and git config key (either may be None), its kind,
    its default (as text; None: unset) and its meaning; `choices` maps accepted words to values."""

    __slots__ = ("name", "env", "key", "kind", "default", "doc", "choices", "minimum")

    def __init__(
        self,
        name: str,
        env: str | None,
        key: str | None,
        kind: str,
        default: str | None,
        doc: str,
        choices: dict[str, str] | None = None,
        minimum: float | None = None,
    ):
        self.name, self.env, self.key, self.kind, self.default = name, env, key, kind, default
        self.doc, self.choices, self.minimum = doc, choices, minimum


_VERIFY = {"once": "once", "always": "always", "never": "0"}
_VERIFY.update({w: "always" for w in _TRUE})
_VERIFY.update({w: "0" for w in _FALSE})

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "checkpoint_type",
            "GIT_THETA_CHECKPOINT_TYPE",
            "theta.checkpointType",
            TEXT,
            None,
            "force a format (`pytorch`, `safetensors`, ...)",
        ),
        Setting(
            "update_type",
            "GIT_THETA_UPDATE_TYPE",
            "theta.updateType",
            TEXT,
            "auto",
            "update type for changed tensors: `auto`, `dense`, `sparse`, `bitdelta`, `low-rank`, `ia3`",
        ),
        Setting(
            "update_data_path",
            "GIT_THETA_UPDATE_DATA_PATH",
            "theta.updateDataPath",
            TEXT,
            None,
            "side file for the update type (what `git theta add --update-data` sets)",
        ),
        Setting(
            "max_chain",
            "GIT_THETA_MAX_CHAIN",
            None,
            INT,
            "8",
            "most stored steps read to rebuild one parameter; past it a change builds on the snapshot",
            minimum=1,
        ),
        Setting(
            "storage_policy",
            "GIT_THETA_STORAGE_POLICY",
            "theta.storagePolicy",
            CHOICE,
            "bounded",
            "`bounded`: a version's fetch closure stays within its raw size, so a clone fetches no more "
            "than Git LFS; `smallest`: the smallest exact change whatever it builds on (see Storage policy)",
            choices={"bounded": "bounded", "smallest": "smallest"},
        ),
        Setting(
            "low_rank_k",
            "GIT_THETA_LOW_RANK_K",
            None,
            INT,
            None,
            "rank of computed (approximate) `low-rank` updates; unset: the change's numerical rank",
            minimum=1,
        ),
        Setting(
            "max_concurrency",
            "GIT_THETA_MAX_CONCURRENCY",
            "theta.maxConcurrency",
            INT,
            "-1",
            "worker threads (0 or less: all cores)",
        ),
        Setting(
            "parameter_atol",
            "GIT_THETA_PARAMETER_ATOL",
            "theta.parameterAtol",
            NUMBER,
            None,
            "opt-in tolerance mode (absolute), see below",
            minimum=0,
        ),
        Setting(
            "parameter_rtol",
            "GIT_THETA_PARAMETER_RTOL",
            "theta.parameterRtol",
            NUMBER,
            None,
            "opt-in tolerance mode (relative), see below",
            minimum=0,
        ),
        Setting(
            "log_level",
            "GIT_THETA_LOG_LEVEL",
            "theta.logLevel",
            LEVEL,
            "WARNING",
            "logging on stderr: `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` or a number",
        ),
        Setting(
            "progress",
            "GIT_THETA_PROGRESS",
            None,
            FLAG,
            "1",
            "progress counters on a terminal's stderr (`0`: none)",
        ),
        Setting(
            "low_memory",
            "GIT_THETA_LOW_MEMORY",
            "theta.lowMemory",
            FLAG,
            "0",
            "low-memory mode: spill what git streams in to a mapped temp file, write large checkouts "
            "from the hooks (see above)",
        ),
        Setting(
            "low_memory_share",
            "GIT_THETA_LOW_MEMORY_SHARE",
            "theta.lowMemoryShare",
            NUMBER,
            "0.5",
            "share of available memory past which low-memory mode is chosen",
            minimum=0,
        ),
        Setting(
            "skip_smudge",
            "GIT_THETA_SKIP_SMUDGE",
            "theta.skipSmudge",
            FLAG,
            "0",
            "leave models as metadata on checkout and clone (like `GIT_LFS_SKIP_SMUDGE`); "
            "`git theta checkout-models` writes them later",
        ),
        Setting(
            "diff_smudge",
            "GIT_THETA_DIFF_SMUDGE",
            None,
            CHOICE,
            "auto",
            "`auto`: smudge under diff-only git commands passes the metadata through (the diff driver "
            "reads what it needs); `full`: rebuild the checkpoint there too",
            choices={"auto": "auto", "full": "full"},
        ),
        Setting(
            "direct_checkout",
            "GIT_THETA_DIRECT_CHECKOUT",
            "theta.directCheckout",
            SWITCH,
            "auto",
            "under `git checkout`, `switch`, `restore` and `clone` the filter process writes the model to "
            "disk itself (and records its stat in the index) instead of piping it through git: `auto` "
            "(models of 64 MiB and more), `1` (always), `0` (never); see *Large models*",
        ),
        Setting(
            "keep_replaced",
            "GIT_THETA_KEEP_REPLACED",
            "theta.keepReplaced",
            SWITCH,
            "auto",
            "a model written by direct checkout keeps a second hard link under `.git/theta-replaced/` "
            "until git replaces it, so that git's delete does not wait for the disk: `auto` (on file "
            "systems mounted with online `discard`), `1` (always), `0` (never); see *Large models*",
        ),
        Setting(
            "fsync",
            "GIT_THETA_FSYNC",
            "theta.fsync",
            FLAG,
            "1",
            "fsync each object before it lands in the store",
        ),
        Setting(
            "direct_io",
            "GIT_THETA_DIRECT_IO",
            "theta.directIo",
            SWITCH,
            "auto",
            "write objects with O_DIRECT, past the page cache: `auto` (background saves of the Python API "
            "only, and checkpoints written outside git's pipe: direct and low-memory checkouts), `1` "
            "(always), `0` (never); file systems without O_DIRECT are written normally",
        ),
        Setting(
            "codec",
            "GIT_THETA_CODEC",
            "theta.codec",
            CHOICE,
            "planes",
            "how new objects are compressed: `planes` (byte planes + zstd for float32, bfloat16, float16 "
            "and changes' words) or `blosc` (the zarr blosc layout of earlier versions, for every dtype); "
            "objects of either layout are always read",
            choices={"planes": "planes", "blosc": "blosc"},
        ),
        Setting(
            "save_queue",
            "GIT_THETA_SAVE_QUEUE",
            "theta.saveQueue",
            INT,
            "1",
            "background saves of one path that may wait behind the running one before `save()` blocks",
            minimum=0,
        ),
        Setting(
            "verify",
            "GIT_THETA_VERIFY",
            "theta.verify",
            CHOICE,
            "once",
            "check rebuilt tensors against their metadata's content hash on checkout, load, diff and "
            "merge: `once` (each entry the first time this repository uses it), `always`, `0` "
            "(`git theta fsck` always checks)",
            choices=_VERIFY,
        ),
        Setting(
            "lock_timeout",
            "GIT_THETA_LOCK_TIMEOUT",
            None,
            NUMBER,
            "300",
            "seconds `git theta add` waits for its turn on the index or for another git command's "
            "`.git/index.lock`, and that prune and the commands storing tensors wait for each other "
            "(each says at once what it waits for)",
            minimum=0,
        ),
        Setting(
            "fetch_retries",
            "GIT_THETA_FETCH_RETRIES",
            None,
            INT,
            "2",
            "times a failed fetch of LFS objects is retried, with backoff",
            minimum=0,
        ),
        Setting(
            "fetch_stall_timeout",
            "GIT_THETA_FETCH_STALL_TIMEOUT",
            None,
            NUMBER,
            "120",
            "seconds without progress after which a transfer is stopped (e.g. a rejected password)",
            minimum=0,
        ),
        Setting(
            "prune_expire",
            "GIT_THETA_PRUNE_EXPIRE",
            "theta.pruneExpire",
            TEXT,
            None,
            "`git theta prune` spares unreferenced objects written after this date (unset: "
            "`gc.pruneExpire`, else `2.weeks.ago`; `now` spares none, `never` deletes none)",
        ),
        Setting(
            "merge_strategy",
            "GIT_THETA_MERGE_STRATEGY",
            "theta.merge.strategy",
            TEXT,
            None,
            "the merge driver's default strategy for parameters changed on both sides, "
            "`STRATEGY[:ARG=VALUE,...]` (see Merging)",
        ),
        Setting(
            "merge_rule",
            None,
            "theta.merge.rule",
            LIST,
            None,
            "per-pattern merge rules `PATTERN=STRATEGY[:ARGS]`, one value each (`git config --add`)",
        ),
        Setting(
            "merge_context",
            "GIT_THETA_MERGE_CONTEXT",
            None,
            TEXT,
            None,
            "the original's context rules, `PATTERN=ours;PATTERN=theirs;...`",
        ),
        Setting(
            "merge_interactive",
            "GIT_THETA_MERGE_INTERACTIVE",
            "theta.merge.interactive",
            FLAG,
            "1",
            "ask on the terminal about parameters no rule resolves",
        ),
        Setting(
            "manual_merge",
            "GIT_THETA_MANUAL_MERGE",
            None,
            FLAG,
            "0",
            "the merge driver writes `PATH.ours`, `PATH.theirs` and `PATH.ancestor` for you to merge",
        ),
    )
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


def _lookup(name: str) -> tuple[str | None, str]:
    """The setting's text and where it came from (for messages): environment, git config, default."""
    s = SETTINGS[name]
    if s.env is not None and os.environ.get(s.env, "") != "":
        return os.environ[s.env], s.env
    if s.key is not None:
        value = _git_config().get(s.key.lower())
        if value is not None:
            return value, f"git config {s.key}"
    return s.default, "the default"


def _bad(s: Setting, where: str, value: str, accepted: str):
    """The one-line error for a bad value: which variable (or key), the value, what is accepted."""
    from git_theta.errors import ThetaError

    name = where if where != "the default" else s.env or s.key
    return ThetaError(f"{name}={value!r} is not {accepted}")


def _accepted(s: Setting) -> str:
    """What a setting accepts, in words."""
    at_least = f" of at least {s.minimum:g}" if s.minimum is not None else ""
    if s.kind == FLAG:
        return "one of: 1, 0 (or true/false, yes/no, on/off)"
    if s.kind == SWITCH:
        return "one of: auto, 1, 0 (or true/false, yes/no, on/off)"
    if s.kind == INT:
        return f"a whole number{at_least}"
    if s.kind == NUMBER:
        return f"a number{at_least}"
    if s.kind == LEVEL:
        return "one of: DEBUG, INFO, WARNING, ERROR, CRITICAL, or a number"
    return "one of: " + ", ".join(dict.fromkeys(s.choices.values()))


def _parse(s: Setting, text: str):
    """`text` as the setting's kind says; ValueError when it is not such a value."""
    word = text.strip().lower()
    if s.kind in (FLAG, SWITCH):
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        if s.kind == SWITCH and word == "auto":
            return None
    elif s.kind in (INT, NUMBER):
        number = int(text) if s.kind == INT else float(text)
        if number == number and abs(number) != float("inf") and (s.minimum is None or number >= s.minimum):
            return number
    elif s.kind == CHOICE:
        if word in s.choices:
            return s.choices[word]
    elif s.kind == LEVEL:
        if word.isdigit() or word.upper() in LEVELS:
            return int(word) if word.isdigit() else LEVELS[word.upper()]
    else:
        return text
    raise ValueError(text)


def value(name: str) -> object:
    """The setting's value as its kind says (bool, bool-or-None for auto, int, float, a choice's
    value, a level number, text), None when unset; a ThetaError for a bad value."""
    s = SETTINGS[name]
    if s.kind == LIST:
        return get_list(name)
    text, where = _lookup(name)
    if text is None:
        return None
    try:
        return _parse(s, text)
    except ValueError:
        raise _bad(s, where, text, _accepted(s)) from None


def _typed(name: str, *kinds: str):
    if SETTINGS[name].kind not in kinds:
        raise TypeError(f"setting {name} is {SETTINGS[name].kind}, not {'/'.join(kinds)}")
    return value(name)


def get(name: str) -> str | None:
    """The setting's text: environment first, then git config, then the default (unchecked; for
    text settings, whose meaning is the caller's)."""
    return _lookup(name)[0]


def get_bool(name: str) -> bool:
    """A 1/0 setting (true/false, yes/no, on/off too)."""
    return bool(_typed(name, FLAG))


def get_switch(name: str) -> bool | None:
    """An on/off/auto setting: True for on, False for off, None for auto."""
    return _typed(name, SWITCH)


def get_float(name: str) -> float | None:
    """A number setting (None when unset and without a default)."""
    return _typed(name, NUMBER)


def get_int(name: str) -> int | None:
    """A whole-number setting, at least its declared minimum (None when unset and without a default)."""
    return _typed(name, INT)


def get_choice(name: str) -> str:
    """A setting with a fixed set of values: the value the given word stands for."""
    return _typed(name, CHOICE)


def get_level(name: str) -> int:
    """A logging level: a name (DEBUG ... CRITICAL) or a number."""
    return _typed(name, LEVEL)


def get_list(name: str) -> list[str]:
    """A multi-valued git config setting (`git config --add`): every value, in order."""
    s = SETTINGS[name]
    if s.kind != LIST:
        raise TypeError(f"setting {name} is {s.kind}, not list")
    from git_theta.git import repo

    return repo.config_all(s.key)


def max_concurrency() -> int:
    """Worker threads for hashing and compression: GIT_THETA_MAX_CONCURRENCY, <=0 means all cores."""
    n = get_int("max_concurrency")
    return n if n > 0 else (os.cpu_count() or 1)
