"""Direct checkout (the default for large models): under checkout/switch/restore/clone the filter
writes the model itself and records its stat in the index, so nothing re-reads the file
afterwards; every command that runs no hook still gets the whole file from the filter."""

import hashlib
import json
import os
import subprocess

import numpy as np
import pytest
from safetensors.numpy import save_file

from git_theta.filter import direct as direct_mod
from git_theta.git import hooks
from tests.helpers import push_and_clone


def _model(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {f"layer{i}.weight": rng.standard_normal((64, 64)).astype(np.float32) for i in range(4)}


def _sha(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def direct(repo):
    repo.env["GIT_THETA_DIRECT_CHECKOUT"] = "1"  # tiny models too (auto: 64 MiB and up)
    repo.theta("track", "*.safetensors")
    return repo


def _two_versions(repo) -> tuple[str, str, str]:
    """Commit models 0 and 1 as m.safetensors; (path, sha256 of v1, of v2)."""
    path = os.path.join(repo.cwd, "m.safetensors")
    save_file(_model(0), path)
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    first = _sha(path)
    save_file(_model(1), path)
    repo("commit", "-qam", "v2")
    return path, first, _sha(path)


def _filters_started(repo, *args) -> int:
    """Run `git ARGS` with trace2 on; how many filter processes it started (a clean = a re-read)."""
    trace = os.path.join(repo.cwd, "..", "trace2.json")
    if os.path.exists(trace):
        os.remove(trace)
    repo.env["GIT_TRACE2_EVENT"] = trace
    try:
        repo(*args)
    finally:
        del repo.env["GIT_TRACE2_EVENT"]
    events = [json.loads(line) for line in open(trace)]
    return sum(
        1 for e in events if e.get("event") == "child_start" and "git-theta-filter" in " ".join(e["argv"])
    )


def _pending(repo) -> str:
    name = os.path.join(repo.cwd, ".git", hooks.PENDING)
    return open(name).read() if os.path.exists(name) else ""


def test_checkout_is_written_by_the_hook_and_never_reread(direct):
    path, first, second = _two_versions(direct)
    direct("checkout", "-q", "HEAD~1")
    assert _sha(path) == first and not _pending(direct)
    index = os.path.join(direct.cwd, ".git", "index")
    # older than the index's second: git does not see it as racily clean, so nothing re-reads it
    assert os.stat(path).st_mtime_ns // 10**9 < os.stat(index).st_mtime_ns // 10**9
    assert _filters_started(direct, "status", "--porcelain") == 0
    assert direct.status() == ""
    direct("switch", "-q", "main")
    assert _sha(path) == second and _filters_started(direct, "diff", "--quiet") == 0


def test_a_change_right_after_the_checkout_is_seen(direct):
    path, first, _ = _two_versions(direct)
    direct("checkout", "-q", "HEAD~1")
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 1  # same size, same second: git must still notice
    with open(path, "wb") as f:
        f.write(data)
    assert direct.status().strip() == "M m.safetensors"
    direct("checkout", "--", "m.safetensors")
    assert _sha(path) == first and direct.status() == ""


def test_commands_without_a_hook_get_the_whole_file(direct):
    path, first, second = _two_versions(direct)
    direct("checkout", "-q", "HEAD~1", "--", "m.safetensors")  # path checkout: the hook writes it
    assert _sha(path) == first and direct.status().strip() == "M  m.safetensors"
    direct("reset", "-q", "--hard")
    assert _sha(path) == second and direct.status() == ""
    save_file(_model(5), path)
    changed = _sha(path)
    direct("stash", "-q")
    assert _sha(path) == second and direct.status() == ""
    direct("stash", "pop", "-q")
    assert _sha(path) == changed
    direct("restore", "m.safetensors")
    assert _sha(path) == second and direct.status() == ""
    direct("reset", "-q", "--hard", "HEAD~1")
    assert _sha(path) == first and direct.status() == "" and not _pending(direct)


def test_fresh_clone_is_written_directly(direct, bare_remote, tmp_path):
    path, _, second = _two_versions(direct)
    clone = push_and_clone(direct, bare_remote, str(tmp_path / "clone"))
    c = direct.at(clone)
    assert _sha(os.path.join(clone, "m.safetensors")) == second
    assert _filters_started(c, "status", "--porcelain") == 0 and c.status() == ""


def test_without_hooks_the_filter_still_writes_it_directly(direct, tmp_path):
    path, first, _ = _two_versions(direct)
    elsewhere = tmp_path / "other-hooks"
    elsewhere.mkdir()
    direct("config", "core.hooksPath", str(elsewhere))  # no hook of ours runs: the filter does it
    direct("checkout", "-q", "HEAD~1")
    assert _sha(path) == first and not _pending(direct)
    assert _filters_started(direct, "status", "--porcelain") == 0 and direct.status() == ""


def test_direct_checkout_off(direct):
    path, first, _ = _two_versions(direct)
    direct.env["GIT_THETA_DIRECT_CHECKOUT"] = "0"
    direct("checkout", "-q", "HEAD~1")
    assert _sha(path) == first and not _pending(direct)
    assert direct.status() == ""


def _objects(repo) -> list[str]:
    root = os.path.join(repo.cwd, ".git", "lfs", "objects")
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def test_a_failed_write_fails_the_checkout(direct, tmp_path):
    path, first, second = _two_versions(direct)
    saved = {}
    for obj in _objects(direct):  # every object corrupt: the write fails while git waits
        saved[obj] = open(obj, "rb").read()
        os.chmod(obj, 0o644)
        with open(obj, "r+b") as f:
            f.seek(len(saved[obj]) // 2)
            f.write(bytes([saved[obj][len(saved[obj]) // 2] ^ 0xFF]))
    r = direct("checkout", "-q", "HEAD~1", check=False)
    assert r.returncode != 0 and "corrupt" in r.stderr.decode()
    assert not [f for f in os.listdir(direct.cwd) if f.startswith(".theta-")] and not _pending(direct)
    assert (
        not os.path.exists(os.path.join(direct.cwd, ".git", direct_mod.NOTE))
        or not open(os.path.join(direct.cwd, ".git", direct_mod.NOTE)).read()
    )
    for obj, data in saved.items():
        with open(obj, "wb") as f:
            f.write(data)
    direct("checkout", "-q", "-f", "HEAD~1")
    assert _sha(path) == first and direct.status() == ""


def test_a_killed_filter_leaves_a_note_the_next_checkout_uses(direct):
    path, first, _ = _two_versions(direct)
    direct.env["GIT_THETA_SKIP_SMUDGE"] = "1"
    direct("checkout", "-q", "HEAD~1")  # metadata in the work tree, as a killed direct write leaves it
    del direct.env["GIT_THETA_SKIP_SMUDGE"]
    dead = _dead_pid()
    note = os.path.join(direct.cwd, ".git", direct_mod.NOTE)
    with open(note, "w") as f:
        f.write(f"{dead}\tm.safetensors\n{os.getpid()}\tother.pt\n")  # a live filter's line stays
    direct_mod.move_stale(direct.cwd)  # what every filter process does first
    assert _pending(direct) == "m.safetensors\n"
    assert open(note).read() == f"{os.getpid()}\tother.pt\n"
    direct("checkout", "-q", "HEAD", "--", ".gitattributes")  # a checkout: its hook writes the model
    assert _sha(path) == first and direct.status() == "" and not _pending(direct)


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.fixture
def keeping(direct):
    direct.env["GIT_THETA_KEEP_REPLACED"] = "1"  # auto: only on file systems mounted with discard
    return direct


def _replaced_dir(repo) -> str:
    return os.path.join(repo.cwd, ".git", "theta-replaced")


def _links(repo) -> dict[str, int]:
    """Each second link the filter keeps (filter.replaced): name -> link count."""
    where = _replaced_dir(repo)
    if not os.path.isdir(where):
        return {}
    return {name: os.stat(os.path.join(where, name)).st_nlink for name in os.listdir(where)}


def test_a_written_checkpoint_keeps_a_second_link_that_the_next_checkout_frees(keeping):
    path, first, second = _two_versions(keeping)
    keeping("checkout", "-q", "HEAD~1")
    st = os.stat(path)
    assert st.st_nlink == 2 and list(_links(keeping).values()) == [2]
    assert _filters_started(keeping, "status", "--porcelain") == 0  # the link came before the index's stat
    keeping("switch", "-q", "main")  # git drops the old file's work-tree link; the filter frees the rest
    assert _sha(path) == second and list(_links(keeping).values()) == [2]
    keeping("checkout", "-q", "HEAD~1", "--", "m.safetensors")
    assert _sha(path) == first and list(_links(keeping).values()) == [2]
    assert keeping.status().strip() == "M  m.safetensors"


def test_prune_frees_a_deleted_checkpoint_the_filter_wrote(keeping):
    path, first, _ = _two_versions(keeping)
    keeping("checkout", "-q", "HEAD~1")
    os.remove(path)  # the user deletes it: its blocks stay held by the second link
    assert list(_links(keeping).values()) == [1]
    out = keeping.theta("prune").stdout.decode()
    assert "would delete" in out and "of checkpoints replaced in the work tree" in out
    assert list(_links(keeping).values()) == [1]
    out = keeping.theta("prune", "--force").stdout.decode()
    assert "deleted" in out and _links(keeping) == {}


def test_an_edited_checkpoint_is_not_touched_by_freeing(keeping):
    path, first, second = _two_versions(keeping)
    keeping("checkout", "-q", "HEAD~1")
    with open(path, "r+b") as f:  # edited in place, same inode: the link sees the edit
        f.seek(-4, os.SEEK_END)
        f.write(np.float32(1.5).tobytes())
    edited = _sha(path)
    keeping("add", "m.safetensors")  # a filter process starts and frees what nothing holds: nothing
    assert _sha(path) == edited and list(_links(keeping).values()) == [2]
    keeping("commit", "-qm", "edit")
    keeping("checkout", "-q", "main")
    assert _sha(path) == second and list(_links(keeping).values()) == [2]


def test_no_second_link_when_told_not_to(direct):
    direct.env["GIT_THETA_KEEP_REPLACED"] = "0"
    path, first, _ = _two_versions(direct)
    direct("checkout", "-q", "HEAD~1")
    assert _sha(path) == first and os.stat(path).st_nlink == 1 and _links(direct) == {}
