"""Content verification: a rebuilt tensor must be the one its metadata's `hash` names.

Metadata comes from commits anyone may make: an entry can point a parameter at another valid
object while keeping the old hash. Entries this repository stored itself or verified before are
recorded (by a fingerprint of the whole entry: objects, slices, chain and hash) in
`.git/theta/verified`; any other entry's tensor is hashed and compared when it is rebuilt, and
the clean filter reuses an entry for an unchanged tensor only once its objects are known to hold
that content. `GIT_THETA_VERIFY`: `once` (default) checks each entry the first time this
repository uses it and then trusts its local objects, as git trusts its own object store
(objects arrive checked against their sha256 by git-lfs; `git theta fsck` checks everything);
`always` checks every tensor every time; `0` never (objects are still checked by their oid).
Measured on a GPT-2-small checkout: hashing the 498 MB took as long as decoding them.
"""

import hashlib
import json
import os
import threading

from git_theta import config
from git_theta.errors import ThetaError, shorten
from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor

_lock = threading.Lock()
_known: dict[str, set[str]] = {}  # verified-file path -> fingerprints read or added


OFF, ONCE, ALWAYS = "off", "once", "always"


def mode() -> str:
    """How tensors rebuilt for checkout, load, diff and merge are checked (`GIT_THETA_VERIFY`):
    OFF, ONCE (entries not on record) or ALWAYS."""
    value = config.get_choice("verify")
    return OFF if value == "0" else value


def enabled() -> bool:
    """Whether rebuilt tensors are checked at all (`GIT_THETA_VERIFY` is not 0)."""
    return mode() != OFF


def check(tensor: RawTensor, entry: ParamEntry, name: str) -> None:
    """Refuse a rebuilt tensor whose bytes do not hash to its entry's `hash`."""
    if not entry.hash:
        return  # an entry being stored (its hash is filled in afterwards)
    if (tensor.dtype, tuple(tensor.shape)) != (entry.dtype, tuple(entry.shape)):
        raise ThetaError(
            f"parameter {shorten(name)} rebuilds as {tensor.dtype}{list(tensor.shape)}, its metadata says "
            f"{entry.dtype}{list(entry.shape)}; restore the file from a good commit"
        )
    if hashlib.sha256(tensor.data).hexdigest() != entry.hash:
        raise ThetaError(
            f"parameter {shorten(name)}: the stored data does not match the content hash in its metadata "
            "(the commit points it at other data); restore the file from a good commit and run `git theta fsck`"
        )


def fingerprint(entry: ParamEntry) -> str:
    """sha256 of the whole entry (objects, slices, chain and hash)."""
    return hashlib.sha256(json.dumps(entry.to_json(), sort_keys=True).encode()).hexdigest()


def _file(store) -> str:
    return os.path.join(store.common_dir, "theta", "verified")


def _loaded(path: str) -> set[str]:
    found = _known.get(path)
    if found is None:
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                found = {line.strip() for line in f if len(line.strip()) == 64}
        except OSError:
            found = set()
        _known[path] = found
    return found


def is_verified(store, entry: ParamEntry) -> bool:
    """True when this repository stored or verified exactly this entry before."""
    with _lock:
        return fingerprint(entry) in _loaded(_file(store))


def record(store, entries) -> None:
    """Remember entries whose content is known to match their hash (appended, one line each)."""
    path = _file(store)
    with _lock:
        known = _loaded(path)
        new = {fingerprint(e) for e in entries if e.hash} - known
        if not new:
            return
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a", encoding="ascii") as f:
                f.write("".join(f"{fp}\n" for fp in sorted(new)))
        except OSError:
            return  # a read-only repository: verified again next time
        known |= new


def retain(store, fingerprints: set[str]) -> int:
    """Forget every recorded entry not in `fingerprints` (prune keeps the record of what is still
    referenced, so it does not grow forever); returns how many were forgotten. Forgetting is
    always safe: an entry not on record is decoded and checked again before reuse."""
    path = _file(store)
    with _lock:
        _known.pop(path, None)
        known = _loaded(path)
        kept = known & fingerprints
        if kept == known:
            return 0
        tmp = f"{path}.theta-tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("".join(f"{fp}\n" for fp in sorted(kept)))
        os.replace(tmp, path)
        _known[path] = kept
        return len(known) - len(kept)
