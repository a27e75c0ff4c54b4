"""`git theta track` / `untrack` (commands.track), through the real CLI in real repositories."""

import os
import subprocess

from git_theta.git.attributes import ATTRIBUTES
from git_theta.metadata import is_metadata
from tests.helpers import save, small_model


def _attributes(repo) -> list[str]:
    with open(os.path.join(repo.cwd, ".gitattributes")) as f:
        return f.read().splitlines()


def test_tracking_from_a_subfolder_writes_a_root_relative_pattern_once_and_stages_it(repo):
    sub = os.path.join(repo.cwd, "models", "v1")
    os.makedirs(sub)
    out = repo.theta("track", "*.pt", cwd=sub).stdout.decode()
    assert "Tracking 'models/v1/*.pt' with git-theta" in out
    repo.theta("track", "*.pt", cwd=sub)  # again: nothing added twice
    assert [line for line in _attributes(repo) if "filter=theta" in line] == [f"models/v1/*.pt {ATTRIBUTES}"]
    assert repo.out("diff", "--cached", "--name-only").split() == [".gitattributes"]
    save(small_model(0), os.path.join(sub, "a.pt"))
    save(small_model(0), os.path.join(repo.cwd, "b.pt"))  # outside the pattern: stays raw
    repo("add", "-A")
    assert repo.out("check-attr", "filter", "models/v1/a.pt", "b.pt").splitlines() == [
        "models/v1/a.pt: filter: theta",
        "b.pt: filter: unspecified",
    ]


def test_untracking_a_pattern_never_tracked_changes_nothing(repo):
    repo.theta("track", "model.pt")
    before = _attributes(repo)
    out = repo.theta("untrack", "other.pt").stdout.decode()
    assert out.strip() == "Was not tracking 'other.pt'"
    assert _attributes(repo) == before
    assert repo.theta("untrack", "model.pt").stdout.decode().strip() == "Untracked 'model.pt'"
    assert not any("filter=theta" in line for line in _attributes(repo))


def test_a_path_outside_the_repository_is_one_line_error(repo, tmp_path):
    proc = repo.theta("track", str(tmp_path / "elsewhere.pt"), check=False)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1 and "outside the repository" in err and len(err.splitlines()) == 1
    assert not os.path.exists(os.path.join(repo.cwd, ".gitattributes"))


def test_tracking_in_a_repository_of_a_machine_without_install_sets_up_the_repository(repo):
    """The global install is undone: track installs the drivers at repository scope, and hooks."""
    for key in ("filter.theta.process", "filter.theta.clean", "filter.theta.smudge", "diff.theta.command"):
        subprocess.run(["git", "config", "--global", "--unset", key], env=repo.env, check=True)
    assert repo("config", "--local", "filter.theta.process", check=False).returncode != 0
    repo.theta("track", "model.pt")
    assert "process" in repo.out("config", "--local", "filter.theta.process")
    assert os.path.exists(os.path.join(repo.cwd, ".git", "hooks", "pre-push"))
    save(small_model(1), os.path.join(repo.cwd, "model.pt"))
    repo("add", "model.pt")
    assert is_metadata(repo("cat-file", "blob", ":model.pt").stdout)
