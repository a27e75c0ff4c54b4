"""Move LFS objects between the local store and a remote through git-lfs, in batches.

Fetch speaks git's filter protocol to one `git lfs filter-process` with delayed smudges, so
git-lfs downloads every missing object through its batch API in one process; push hands all
oids to one `git lfs push --object-id` call per few hundred objects.
"""

import os
import subprocess
import threading
import time

from git_theta import config
from git_theta.errors import MissingObjectError, ThetaError
from git_theta.git import pktline
from git_theta.logs import get_logger
from git_theta.metadata import LFS_SPEC
from git_theta.procs import kill_tree
from git_theta.storage.lfs_store import LfsStore

log = get_logger(__name__)
_PUSH_BATCH = 400


def _lfs_env() -> dict:
    env = dict(os.environ)
    env.pop("GIT_LFS_SKIP_SMUDGE", None)  # we ask for the objects explicitly
    return env


def pointer(oid: str, size: int) -> bytes:
    """A Git LFS pointer file for an object."""
    return f"version {LFS_SPEC}\noid sha256:{oid}\nsize {size}\n".encode()


def fetch(
    store: LfsStore,
    objects: dict[str, int],
    cwd: str,
    what: str = "",
    remote: str | None = None,
    content_checked: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Download the objects (oid -> size) missing from `store`; MissingObjectError if any stay missing.

    git-lfs checks each object's sha256 before it lands in the store, so a broken transfer is never
    accepted; what is still missing after a failed attempt is tried again with backoff.
    `content_checked`: objects the caller reads only to rebuild tensors it checks against their
    content hash before anything else uses them (a checkout of entries this repository never
    checked, see updates.load_entry); a remote on this machine gives those without hashing them
    first (see _fetch_local).
    """
    missing = {oid: size for oid, size in objects.items() if not store.has(oid)}
    local = _local_objects_dir(cwd, remote) if missing else None
    if local:
        missing = _fetch_local(store, missing, local, content_checked)
    if missing:
        require_git_lfs(f"fetch {len(missing)} LFS object(s) of {what or 'the model'}")
    err = ""
    for attempt in range(config.get_int("fetch_retries") + 1):
        if not missing:
            return
        if attempt:
            time.sleep(0.5 * 2 ** (attempt - 1))
        log.info("fetching %d LFS objects (attempt %d)", len(missing), attempt + 1)
        err = _fetch_once(missing, cwd, remote) or err
        missing = {oid: size for oid, size in missing.items() if not store.has(oid)}
    if missing:
        hint = err.splitlines()[-1] if err else "no remote has them"
        raise MissingObjectError(
            f"{len(missing)} LFS object(s) of {what or 'the model'} are missing locally and could not be fetched "
            f"({hint}); check the remote (`git remote -v`, `git config lfs.url`) and run `git theta fetch`"
        )


def _lfs_setting(key: str, cwd: str) -> str | None:
    """A git-lfs setting as git-lfs finds it: git config, else the repository's .lfsconfig."""
    from git_theta.git import repo

    value = repo.config_get(key, cwd)
    if value:
        return value
    try:
        top = repo.root(cwd)
    except ThetaError:
        return None
    value = _lfsconfig(top).get(repo.config_key(key))
    return value.strip() if value is not None else None


_lfsconfigs: dict[str, dict[str, str]] = {}
_LFSCONFIG_BLOBS = b":.lfsconfig\nHEAD:.lfsconfig\n"  # where git-lfs reads it without a work-tree file


def look_ahead(top: str) -> None:
    """Start the git calls a push from `top` makes to find its remote's objects folder (git
    config, and where the .lfsconfig is), so that they run while the pushing process works."""
    from git_theta.git import repo

    repo.start(["config", "-z", "--list"], top)
    if not os.path.isfile(os.path.join(top, ".lfsconfig")):
        repo.start(["cat-file", "--batch-check"], top, _LFSCONFIG_BLOBS)


def _lfsconfig(top: str) -> dict[str, str]:
    """The keys of the work tree's .lfsconfig, else the index's or HEAD's (where git-lfs reads
    it), once per process."""
    from git_theta.git import repo

    if top not in _lfsconfigs:
        if os.path.isfile(os.path.join(top, ".lfsconfig")):
            sources = [["-f", os.path.join(top, ".lfsconfig")]]
        else:  # one git call finds which blob exists (most repositories have neither)
            check = repo.run(["cat-file", "--batch-check"], top, _LFSCONFIG_BLOBS, check=False)
            lines = check.decode("utf-8", "replace").splitlines()
            names = _LFSCONFIG_BLOBS.decode().split()
            sources = [["--blob", n] for n, line in zip(names, lines) if not line.endswith(" missing")]
        found = None
        for source in sources:
            found = repo.config_list([*source, "--list"], top)
            if found is not None:
                break
        _lfsconfigs[top] = found or {}
    return _lfsconfigs[top]


def _local_objects_dir(cwd: str, remote: str | None, for_push: bool = False) -> str | None:
    """The LFS object folder of the remote (a name, or a path or file:// URL) when it is a
    repository on this machine with no LFS URL of its own configured; None for anything git-lfs
    must reach. `for_push`: the folder may not exist yet (a repository that never had LFS
    objects), and a remote that keeps its objects elsewhere (its lfs.storage) is left to git-lfs."""
    from urllib.parse import unquote, urlparse

    from git_theta.git import repo

    name = remote or repo.config_get("remote.lfsdefault", cwd) or "origin"
    if any(_lfs_setting(key, cwd) for key in ("lfs.url", f"remote.{name}.lfsurl")):
        return None
    url = repo.config_get(f"remote.{name}.url", cwd) or (remote if for_push else None)
    if not url:
        return None
    if url.startswith("file://"):
        path = unquote(urlparse(url).path)
    elif "://" in url or (":" in url.split("/", 1)[0] and not os.path.exists(url)):
        return None  # a network URL, or user@host:path
    else:
        path = url if os.path.isabs(url) else os.path.join(cwd, url)
    for git_dir in (path, os.path.join(path, ".git")):
        objects = os.path.join(git_dir, "lfs", "objects")
        if os.path.isdir(objects) and not for_push:
            return objects
        if (
            for_push
            and os.path.isfile(os.path.join(git_dir, "HEAD"))
            and os.path.isdir(os.path.join(git_dir, "objects"))
        ):
            return None if _own_lfs_storage(os.path.join(git_dir, "config")) else objects
    return None


def _own_lfs_storage(config_file: str) -> bool:
    """Whether a repository's config file sets lfs.storage; git is asked only when the text could
    (it names `storage` or includes another file): one git call less on most pushes."""
    from git_theta.git import repo

    try:
        with open(config_file, "rb") as f:
            text = f.read().lower()
    except OSError:
        return False
    if b"storage" not in text and b"include" not in text:
        return False
    own = repo.config_list(["--includes", "-f", config_file, "--list"]) or {}
    return bool(own.get("lfs.storage", "").strip())


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link of an object (a copy across file systems): LFS objects never change in place."""
    try:
        os.link(src, dst)
    except OSError:
        import shutil  # on use: see git.repo

        shutil.copyfile(src, dst)


def _fetch_local(
    store: LfsStore,
    missing: dict[str, int],
    source: str,
    content_checked: frozenset[str] | set[str] = frozenset(),
) -> dict[str, int]:
    """Take objects from a remote on this machine, hard-linked as git links the objects of a local
    clone (a copy across file systems), each checked against its oid before it lands; returns
    those still missing. GPT-2-small's 437 MB from a local bare remote: 1.7-1.9 s through
    git-lfs (which copies and re-reads them) against ~0.3 s linked and hashed.

    Objects in `content_checked` land unhashed (noted in store.unhashed): the caller's content
    check covers them, and hashing them too cost a fresh clone of GPT-2-small 0.3 s of its ~1.8
    s of CPU. When that check fails, the objects are read again with their own check, and an
    unhashed one that fails it is deleted (LfsStore._read): a corrupt object never stays."""
    from git_theta import parallel
    from git_theta.storage.lfs_store import verify_file

    def take(oid: str) -> bool:
        src = os.path.join(source, oid[0:2], oid[2:4], oid)
        if len(oid) != 64 or not all(c in "0123456789abcdef" for c in oid) or not os.path.isfile(src):
            return False
        store.ensure_dir(store.tmp_dir)
        tmp = os.path.join(store.tmp_dir, f"theta-link-{oid[:16]}-{os.getpid()}-{threading.get_ident()}")
        try:
            _link_or_copy(src, tmp)
            unhashed = oid in content_checked
            if not unhashed and not verify_file(tmp, oid):
                log.warning("LFS object %s in %s is corrupt; fetching it with git-lfs", oid[:12], source)
                return False
            store.ensure_dir(os.path.dirname(store.path(oid)))
            if unhashed:
                store.unhashed.add(oid)
            os.replace(tmp, store.path(oid))
            return True
        except OSError as exc:
            log.info("could not take LFS object %s from %s: %s", oid[:12], source, exc)
            return False
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    done = dict(zip(missing, parallel.ordered_map(take, list(missing), ahead=len(missing))))
    log.info("took %d of %d LFS objects from %s", sum(done.values()), len(missing), source)
    return {oid: size for oid, size in missing.items() if not done[oid]}


def _fetch_once(missing: dict[str, int], cwd: str, remote: str | None) -> str:
    """One `git lfs filter-process` run over the missing objects; returns git-lfs's stderr."""
    cmd = ["git"] + (["-c", f"remote.lfsdefault={remote}"] if remote else []) + ["lfs", "filter-process"]
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_lfs_env(),
        )
    except OSError:
        raise ThetaError("git-lfs is not installed: install it (e.g. `apt-get install git-lfs`)") from None
    stalled = threading.Event()
    watchdog = threading.Thread(target=_watch, args=(proc, missing, cwd, stalled), daemon=True)
    watchdog.start()
    try:
        store = LfsStore.for_cwd(cwd)
        _fetch_with(proc, missing, store.has)
    except (pktline.PktLineError, EOFError, BrokenPipeError, ValueError, OSError) as exc:
        log.info("git lfs filter-process ended early: %s", exc)
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.wait()
    if err:
        log.info("git-lfs: %s", err)
    if stalled.is_set():
        err = (
            (err + "\n" if err else "")
            + f"no progress for {config.get_float('fetch_stall_timeout'):.0f}s (wrong credentials or server unreachable?)"
        )
    return err


def _watch(proc: subprocess.Popen, missing: dict[str, int], cwd: str, stalled: threading.Event) -> None:
    """Stop git-lfs when no object has arrived for a while (it can retry a bad login forever)."""
    store = LfsStore.for_cwd(cwd)
    have, last = -1, time.monotonic()
    while proc.poll() is None:
        time.sleep(0.5)
        now = sum(1 for oid in missing if store.has(oid))
        if now != have:
            have, last = now, time.monotonic()
        elif time.monotonic() - last > config.get_float("fetch_stall_timeout"):
            stalled.set()
            kill_tree(proc.pid)  # git-lfs's credential helpers hold our pipes open too
            return


def _fetch_with(proc: subprocess.Popen, missing: dict[str, int], have=lambda oid: False) -> None:
    """Ask git-lfs for each object; `have(oid)` tells whether one has landed in the store."""
    w, r = proc.stdin, proc.stdout
    _, caps = pktline.client_handshake(w, r, ("clean", "smudge", "delay"))
    can_delay = "delay" in caps
    delayed = []
    for oid, size in missing.items():
        pktline.write_text(w, "command=smudge", f"pathname={oid}")
        if can_delay:
            pktline.write_text(w, "can-delay=1")
        pktline.write_flush(w)
        pktline.write_packet(w, pointer(oid, size))
        pktline.write_flush(w)
        w.flush()
        status = pktline.read_key_values(r).get("status")
        if status == "delayed":
            delayed.append(oid)
            continue
        if status == "success":
            _drain_content(r)
        elif status is not None and status not in ("error", "abort"):
            raise pktline.PktLineError(f"unexpected status {status}")
    while delayed:
        pktline.write_text(w, "command=list_available_blobs")
        pktline.write_flush(w)
        w.flush()
        names = [line.partition("=")[2] for line in pktline.read_text_list(r) if line.startswith("pathname=")]
        pktline.read_key_values(r)  # status
        if not names:
            break
        for oid in names:
            if oid in delayed and have(oid):
                # listed as available: git-lfs has put it in the store, whose bytes it would
                # now stream back to us for nothing (GPT-2-small v3: 780 MB through a pipe)
                delayed.remove(oid)
                continue
            pktline.write_text(w, "command=smudge", f"pathname={oid}")
            pktline.write_flush(w)
            pktline.write_flush(w)  # empty content: git-lfs answers with the delayed blob
            w.flush()
            status = pktline.read_key_values(r).get("status")
            if status == "success":
                _drain_content(r)
            if oid in delayed:
                delayed.remove(oid)


def _drain_content(r) -> None:
    """Read and drop one response's content (git-lfs has stored the object) and final status."""
    while pktline.read_packet(r) is not None:
        pass
    pktline.read_text_list(r)


def require_git_lfs(purpose: str) -> None:
    """A clear error (instead of git's "not a git command") when git-lfs is not installed."""
    import shutil  # on use: see git.repo

    if shutil.which("git-lfs") is None:
        raise MissingObjectError(
            f"git-lfs is not installed, and git-theta needs it to {purpose}; install it "
            "(apt-get install git-lfs, brew install git-lfs) and run `git lfs install`"
        )


def push(remote: str, oids: list[str], cwd: str, store: LfsStore | None = None) -> None:
    """Upload objects to `remote` (a remote's name or URL): linked into a repository on this
    machine (see _push_local), else with git-lfs; both skip what the remote already has."""
    if oids and store is not None:
        target = _local_objects_dir(cwd, remote, for_push=True)
        if target:
            oids = _push_local(store, oids, target)
    if oids:
        require_git_lfs(f"push {len(oids)} LFS object(s) to {remote!r}")
    for i in range(0, len(oids), _PUSH_BATCH):
        batch = oids[i : i + _PUSH_BATCH]
        proc = subprocess.run(
            ["git", "lfs", "push", "--object-id", remote, *batch],
            cwd=cwd,
            capture_output=True,
            env=_lfs_env(),
        )
        if proc.returncode != 0:
            msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ThetaError(
                f"pushing {len(batch)} LFS object(s) to {remote!r} failed: {msg[-1] if msg else proc.returncode}"
            )


def _push_local(store: LfsStore, oids: list[str], target: str) -> list[str]:
    """Link our objects into the LFS object folder of a repository on this machine, as git-lfs
    does for such a remote but without its process (GPT-2-small's 437 MB: `git lfs push` took
    ~0.2 s of a 0.35 s push here). A hard link appears whole, so it is made under the object's
    own name (one call per object, and an existing one is kept); a copy, where a link is
    refused, lands under a temp name and is renamed into place, so a reader there never sees
    part of one. Returns the oids left for git-lfs (a link or copy that failed)."""
    left = []
    tmp_dir = os.path.join(os.path.dirname(target), "tmp")
    for oid in oids:
        dst = os.path.join(target, oid[0:2], oid[2:4], oid)
        try:
            try:
                os.link(store.path(oid), dst)
            except FileNotFoundError:  # its folders are new: a remote's objects are spread over 65,536
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.link(store.path(oid), dst)
        except FileExistsError:
            continue
        except OSError:
            try:
                _copy_into(store.path(oid), dst, tmp_dir)
            except OSError as exc:
                log.info("could not link or copy LFS object %s into %s: %s", oid[:12], target, exc)
                left.append(oid)
    log.info("linked %d of %d LFS objects into %s", len(oids) - len(left), len(oids), target)
    return left


def _copy_into(src: str, dst: str, tmp_dir: str) -> None:
    """Copy an object to `dst` through a temp file in `tmp_dir`, renamed into place."""
    os.makedirs(tmp_dir, exist_ok=True)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = os.path.join(tmp_dir, f"theta-push-{os.path.basename(dst)[:16]}-{os.getpid()}")
    try:
        import shutil  # on use: see git.repo

        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
