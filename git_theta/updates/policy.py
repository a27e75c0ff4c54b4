"""Storage policy: what one version may cost to fetch, against how small the history is.

A change is stored on top of an earlier entry, so checking out a version from nothing (a fresh
clone, a checkout into an empty store) downloads each parameter's *closure*: its own object plus
everything its chain builds on. A bit delta of a full fine-tune (~0.68 of the raw size) on its
snapshot (~0.88) makes a closure of ~1.56x the raw tensor, so a clone of that version would
download more than Git LFS, which downloads the file once.

- `bounded` (the default): a change is stored only while its closure stays within the raw size
  of the tensor; past that the new value is stored whole (a fresh snapshot, which later changes
  build on). The bound is per tensor, so it holds for every file and every subset of a file (a
  version's closure is at most the sum of its tensors' raw bytes, less than the file Git LFS
  would fetch), is decided locally while tensors are stored in parallel, and does not depend on
  the order they are stored in. Sparse, few-layer, appended-row and low-rank changes are small
  enough to stay deltas; a full fine-tune becomes a snapshot.
- `smallest`: the smallest exact encoding whatever it builds on (git-theta before this policy):
  the least bytes stored and pushed, at the cost of clones fetching up to the chain's sum.

Small tensors share pack objects (storage.packs); a packed entry counts its own slice, since the
rest of the pack belongs to other parameters of the same commit.
"""

import math

from git_theta import config
from git_theta.metadata import ParamEntry
from git_theta.storage.packs import PACK_KEY
from git_theta.updates import chain

# a pack is stored afresh only for at least this many dead bytes: below it a new object (a file, a
# transfer) costs more than the bytes it saves, and a model of a few kB would store a whole
# version again for a change of one tensor (codec headers alone put tiny tensors past their raw size)
DETACH_MIN_BYTES = 64 << 10
BOUNDED = "bounded"
SMALLEST = "smallest"
POLICIES = (BOUNDED, SMALLEST)


def current() -> str:
    """The storage policy in force (GIT_THETA_STORAGE_POLICY / theta.storagePolicy)."""
    return config.get_choice("storage_policy")


def step_bytes(entry: ParamEntry) -> int:
    """Bytes of this step alone: its slice when packed with other parameters, else its object."""
    piece = entry.extra.get(PACK_KEY)
    if isinstance(piece, (list, tuple)) and len(piece) == 2 and isinstance(piece[1], int):
        return int(piece[1])
    return int(entry.size or 0)


def closure(entry: ParamEntry | None, name: str = "") -> int:
    """Bytes fetched to rebuild `entry` from nothing: its step and every step below it."""
    if entry is None:
        return 0
    seen: dict[str, int] = {}
    for step in chain.chain_of(entry, name):
        seen[step.oid] = max(seen.get(step.oid, 0), step_bytes(step))
    return sum(seen.values())


def room(base: ParamEntry | None, nbytes: int, name: str = "") -> float:
    """Most bytes a change of a `nbytes` tensor built on `base` may take (inf: no bound)."""
    if current() == SMALLEST:
        return math.inf
    return nbytes - closure(base, name)


def version_objects(entries: dict[str, ParamEntry]) -> dict[str, int]:
    """LFS objects (oid -> size) that checking out a version with these entries fetches."""
    found: dict[str, int] = {}
    for name, entry in entries.items():
        found.update(chain.objects(entry, name))
    return found


def packs_to_detach(entries: dict[str, ParamEntry], bound: int) -> set[str]:
    """Pack objects whose parameters should be stored afresh so the version fetches at most
    `bound` bytes (the file: what Git LFS fetches); empty when it already does.

    Each parameter is bounded on its own, but a pack is fetched whole: parameters of an older
    pack that changed since leave dead slices that a version still referencing the pack fetches
    (a change of half the small tensors of a model made of small tensors fetches both halves).
    Packs are dropped most-dead-bytes first: the live parameters are stored again (a new pack of
    this version's values), which saves the dead bytes. Packs with fewer than DETACH_MIN_BYTES
    dead bytes stay, so the bound holds up to that much per pack.
    """
    objects = version_objects(entries)
    excess = sum(objects.values()) - bound
    if excess <= 0:
        return set()
    slices: dict[str, set] = {}  # pack -> the slices this version reads from it
    for name, entry in entries.items():
        for step in chain.chain_of(entry, name):
            piece = step.extra.get(PACK_KEY)
            if isinstance(piece, (list, tuple)) and len(piece) == 2:
                slices.setdefault(step.oid, set()).add(tuple(piece))
    live = {oid: sum(length for _, length in used) for oid, used in slices.items()}
    dead = sorted(((objects[oid] - used, oid) for oid, used in live.items()), reverse=True)
    chosen: set[str] = set()
    for waste, oid in dead:
        if excess <= 0 or waste < DETACH_MIN_BYTES:
            break
        chosen.add(oid)
        excess -= waste
    return chosen
