"""Record a file's stat in git's index without git re-reading the file.

After git-theta writes a checkpoint itself (a deferred checkout), git's index still holds the
stat of the metadata file git wrote, so the next `git status` would run the clean filter over the
whole checkpoint (2-3 s for 500 MB here) to find it unchanged; `git update-index --refresh` does
the same, and git has no plumbing that sets an entry's stat without reading the file. So we
rewrite the stat fields of that one entry in place, as git itself does: under `index.lock`, the
trailing checksum recomputed, the lock renamed over the index.

Only the stat fields change (fixed-size fields at the start of the entry), so every extension
(cache tree, untracked cache, fsmonitor, EOIE/IEOT offsets) stays valid. The index file keeps its
old mtime, which git compares entries against to spot "racily clean" ones: every other entry
keeps exactly the verdict it had, and the caller gives the file an mtime older than the index
(see `backdate`), so this entry is never racy and no later change to the file can look clean.
Anything unexpected (a split index, a lock held by git, the entry changed) returns False and
the caller falls back to `git update-index --refresh`.
"""

import hashlib
import os
import struct

from git_theta.git import repo

STAT_FIELDS = 10  # ctime s/ns, mtime s/ns, dev, ino, mode, uid, gid, size: 32-bit big-endian each
_EXTENDED = 0x4000
_NAME_MASK = 0x0FFF


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """git's offset varint (index v4 path prefixes)."""
    c = data[pos]
    pos += 1
    value = c & 0x7F
    while c & 0x80:
        value += 1
        c = data[pos]
        pos += 1
        value = (value << 7) + (c & 0x7F)
    return value, pos


def find_entry(data: bytes, path: bytes, hash_size: int) -> int | None:
    """Offset of `path`'s stage-0 entry in index bytes `data`; None when absent or the index is
    of a kind we do not patch (unknown version, split index)."""
    if len(data) < 12 + hash_size or data[:4] != b"DIRC":
        return None
    version, count = struct.unpack(">II", data[4:12])
    if version not in (2, 3, 4):
        return None
    pos, previous, found = 12, b"", None
    end = len(data) - hash_size
    fixed = 4 * STAT_FIELDS + hash_size + 2
    for _ in range(count):
        if pos + fixed > end:
            return None
        flags = struct.unpack(">H", data[pos + fixed - 2 : pos + fixed])[0]
        name_at = pos + fixed + (2 if flags & _EXTENDED else 0)
        if version == 4:
            strip, name_at = _varint(data, name_at)
            nul = data.index(b"\0", name_at)
            name = previous[: len(previous) - strip] + data[name_at:nul]
            nxt = nul + 1
        else:
            nul = data.index(b"\0", name_at)
            name = data[name_at:nul]
            nxt = pos + ((name_at - pos + len(name) + 8) & ~7)
        if name == path and (flags >> 12) & 3 == 0:
            found = pos
        previous = name
        pos = nxt
    # extensions: a split index keeps entries elsewhere; leave that to git
    while pos + 8 <= end:
        sig, size = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        if sig == b"link":
            return None
        pos += 8 + size
    return found


def stat_fields(st: os.stat_result, mode: int) -> bytes:
    """The 40 bytes git stores for `st` (each field truncated to 32 bits, as git does)."""
    m = 0xFFFFFFFF
    return struct.pack(
        ">10I",
        int(st.st_ctime) & m,
        st.st_ctime_ns % 1_000_000_000,
        int(st.st_mtime) & m,
        st.st_mtime_ns % 1_000_000_000,
        st.st_dev & m,
        st.st_ino & m,
        mode,
        st.st_uid & m,
        st.st_gid & m,
        st.st_size & m,
    )


def patch(index_path: str, path: str, oid_hex: str, st: os.stat_result) -> bool:
    """Set the stat of `path`'s stage-0 entry, which must name blob `oid_hex`, to `st`.
    False (and the index untouched) when that cannot be done safely."""
    hash_size = len(oid_hex) // 2
    algo = {20: hashlib.sha1, 32: hashlib.sha256}.get(hash_size)
    lock = index_path + ".lock"
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError:
        return False  # git holds the index (or cannot be locked here): let git refresh it
    try:
        with open(index_path, "rb") as f:
            old = os.fstat(f.fileno())
            data = f.read()
        at = None if algo is None else find_entry(data, path.encode("utf-8"), hash_size)
        if at is None:
            raise _Skip
        oid_at = at + 4 * STAT_FIELDS
        if data[oid_at : oid_at + hash_size].hex() != oid_hex:
            raise _Skip  # the entry changed since: not ours to mark clean
        mode = struct.unpack(">I", data[at + 24 : at + 28])[0]
        body = bytearray(data[:-hash_size])
        body[at : at + 4 * STAT_FIELDS] = stat_fields(st, mode)
        trailer = data[-hash_size:]
        if trailer != bytes(hash_size):  # index.skipHash leaves it zero
            trailer = algo(body).digest()
        with os.fdopen(fd, "wb") as out:
            fd = -1
            out.write(body)
            out.write(trailer)
        os.chmod(lock, old.st_mode & 0o7777)
        os.utime(lock, ns=(old.st_atime_ns, old.st_mtime_ns))  # keep every other entry's racy verdict
        os.replace(lock, index_path)
        return True
    except (_Skip, OSError, ValueError, IndexError, struct.error):
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(lock)
        except OSError:
            pass
        return False


class _Skip(Exception):
    pass


def backdate(fd: int, index_path: str) -> None:
    """Give the open file an mtime one second before the index's, so git never sees it as
    "racily clean" (an mtime in the index's second makes git re-read it through the filter).
    Any later write sets the mtime to now, which differs: no change can go unnoticed."""
    try:
        index_mtime = os.stat(index_path).st_mtime_ns
    except OSError:
        return
    now = os.fstat(fd).st_mtime_ns
    when = min(now, index_mtime - 1_000_000_000)
    os.utime(fd, ns=(when, when))


def index_oids(top: str, paths: list[str]) -> dict[str, str]:
    """path -> blob id of its stage-0 index entry."""
    out = {}
    for rec in repo.run(["ls-files", "-s", "-z", "--", *paths], cwd=top).split(b"\0"):
        info, _, path = rec.partition(b"\t")
        fields = info.split()
        if len(fields) == 3 and fields[2] == b"0":
            out[path.decode()] = fields[1].decode()
    return out


def blob_id(data: bytes, hex_len: int) -> str:
    """git's blob id of `data` (SHA-1, or SHA-256 in a SHA-256 repository)."""
    algo = hashlib.sha256 if hex_len == 64 else hashlib.sha1
    return algo(b"blob %d\0" % len(data) + data).hexdigest()


def record_stat(top: str, paths: list[str]) -> None:
    """Have the index record the written files' stat without staging anything: each entry gets
    its own blob again, with no stat (so git compares content, through the filter, not sizes),
    then a refresh. `update-index -- PATH` would stage whatever the filter makes of the file."""
    wanted = set(paths)
    entries = []
    for rec in repo.run(["ls-files", "-s", "-z"], cwd=top).split(b"\0"):
        info, _, path = rec.partition(b"\t")
        if path.decode() in wanted and info.endswith(b" 0"):  # stage 0: not a conflict
            entries.append(info + b"\t" + path + b"\0")
    if entries:
        repo.run(["update-index", "-z", "--index-info"], cwd=top, input=b"".join(entries))
    repo.run(["update-index", "-q", "--refresh"], cwd=top, check=False)
