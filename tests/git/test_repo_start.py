"""repo.start: a git call begun early answers the first identical call, and only that one."""

from git_theta.git import repo as repo_mod


def test_a_started_call_answers_the_same_question_once(repo):
    here = repo.cwd
    repo_mod.start(["hash-object", "--stdin"], here, b"abc")
    started = repo_mod._started[(("hash-object", "--stdin"), here, b"abc")]
    assert (
        repo_mod.run(["hash-object", "--stdin"], here, b"abc").strip()
        == b"f2ba8f84ab5c1bce84a7b441cb1959cfc7093b7f"
    )
    assert started.returncode == 0 and not repo_mod._started  # taken, not run again
    other = repo_mod.run(["hash-object", "--stdin"], here, b"abd")  # not started: run as before
    assert other.strip() != b"f2ba8f84ab5c1bce84a7b441cb1959cfc7093b7f"


def test_a_started_call_that_fails_fails_where_it_is_asked(repo):
    repo_mod.start(["cat-file", "-t", "f" * 40], repo.cwd)
    assert repo_mod.run(["cat-file", "-t", "f" * 40], repo.cwd, check=False) == b""
    repo_mod.start(["config", "-z", "--list", "--file", "/nonexistent"], repo.cwd)
    assert repo_mod.config_list(["--list", "--file", "/nonexistent"], repo.cwd) is None
