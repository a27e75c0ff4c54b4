"""What a colleague meets: a clone made in a fresh HOME without `git theta install`."""

import json
import os
import subprocess

import pytest
from safetensors.torch import load as safetensors_load

import git_theta
from git_theta.git.install import config_values
from tests.conftest import Git
from tests.helpers import assert_same_state, commit_tracked_model, small_model

SHARD = "ckpt/model-00001-of-00002.safetensors"


@pytest.fixture
def colleague(repo, bare_remote, tmp_path, git_env) -> tuple[Git, bytes]:
    """(a clone by someone who never ran `git theta install`, the checkpoint's bytes)."""
    os.makedirs(os.path.join(repo.cwd, "ckpt"))
    path = commit_tracked_model(repo, small_model(), SHARD)
    with open(path, "rb") as f:
        model = f.read()
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    home = tmp_path / "colleague-home"
    home.mkdir()
    env = dict(git_env, HOME=str(home))
    for key, value in (("user.name", "Colleague"), ("user.email", "c@example.invalid")):
        subprocess.run(["git", "config", "--global", key, value], env=env, check=True)
    dest = str(tmp_path / "clone")
    subprocess.run(["git", "clone", "-q", bare_remote, dest], env=env, check=True, capture_output=True)
    return Git(dest, env), model


def objects(g: Git) -> set[str]:
    """Every object in the clone's git object database (loose and packed)."""
    out = g.out("cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return set(out.split())


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode()
    assert proc.returncode != 0 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_the_clone_holds_metadata_that_says_what_it_is(colleague):
    g, _ = colleague
    with open(os.path.join(g.cwd, SHARD), "rb") as f:
        head = f.read(160).decode()
    assert head.startswith('{\n "README": "This is git-theta metadata, not the checkpoint')
    assert "`git theta install`" in head


@pytest.mark.parametrize(
    "install_first", [False, True], ids=["checkout-models", "install-then-checkout-models"]
)
def test_checkout_models_sets_up_the_clone_and_stages_nothing(colleague, install_first):
    g, model = colleague
    before = objects(g)
    if install_first:  # the notice's fix, as typed
        g.theta("install")
    g.theta("checkout-models")
    with open(os.path.join(g.cwd, SHARD), "rb") as f:
        assert f.read() == model
    assert g.status() == ""
    assert objects(g) == before  # no raw checkpoint blob was written
    assert g.out("config", "filter.theta.process").strip() == config_values()["filter.theta.process"]


@pytest.mark.parametrize("command", [("diff",), ("add", SHARD), ("add", SHARD, "--update-type", "sparse")])
def test_commands_that_read_the_working_copy_refuse_with_the_fix(colleague, command):
    g, _ = colleague
    err = one_line_error(g.theta(*command, check=False))
    assert SHARD in err and "not the checkpoint" in err and "`git theta install`" in err
    assert g.status() == ""


def test_read_only_commands_work_and_point_at_install(colleague):
    g, _ = colleague
    proc = g.theta("ls-files")
    assert proc.stdout.decode().splitlines() == [SHARD]
    assert SHARD in proc.stderr.decode() and "`git theta install`" in proc.stderr.decode()
    proc = g.theta("fsck")
    assert "`git theta install`" in proc.stderr.decode()


def test_add_of_a_real_checkpoint_without_the_filter_is_refused(colleague):
    g, model = colleague
    with open(os.path.join(g.cwd, SHARD), "wb") as f:
        f.write(model)
    before = objects(g)
    err = one_line_error(g.theta("add", SHARD, check=False))
    assert "would store the checkpoint raw" in err and "`git theta install`" in err
    assert g.out("diff", "--cached", "--name-only") == ""
    assert objects(g) == before


@pytest.fixture
def api_env(colleague, monkeypatch):
    g, _ = colleague
    monkeypatch.setenv("HOME", g.env["HOME"])
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return colleague


def test_the_python_api_reads_git_and_checks_out_real_checkpoints(api_env):
    g, model = api_env
    path = os.path.join(g.cwd, SHARD)
    expected = safetensors_load(model)
    assert_same_state(git_theta.load(SHARD, repo=g.cwd), expected, ordered=False)
    loaded = git_theta.load_from_git("HEAD", path, "safetensors", checkout=True)
    assert_same_state(loaded, expected, ordered=False)
    with open(path, "rb") as f:
        assert f.read() == model
    assert g.status() == ""


def test_the_python_api_materializes_real_checkpoints(api_env):
    g, _ = api_env
    changed = small_model(1)
    git_theta.save(changed, SHARD, "fine-tune", repo=g.cwd, materialize=True)
    with open(os.path.join(g.cwd, SHARD), "rb") as f:
        assert_same_state(safetensors_load(f.read()), dict(changed), ordered=False)
    assert g.status() == ""


def test_re_adding_the_same_tensors_keeps_metadata_written_without_the_notice(repo):
    path = commit_tracked_model(repo, small_model(), "model.safetensors")
    doc = json.loads(repo.out("show", "HEAD:model.safetensors"))
    del doc["README"]
    old = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
    blob = repo("hash-object", "-w", "--stdin", input=old).stdout.decode().strip()
    repo("update-index", "--cacheinfo", f"100644,{blob},model.safetensors")
    repo("commit", "-qm", "metadata as an earlier git-theta wrote it")
    os.utime(path, (1, 1))  # git must run the clean filter again
    repo("add", "model.safetensors")
    assert repo.status() == ""
    assert repo("cat-file", "blob", ":model.safetensors").stdout == old
