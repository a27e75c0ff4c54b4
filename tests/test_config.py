"""config: every setting declared once, read through typed getters (environment, then git config,
then the default), a bad value one line naming its variable; README's table is the declaration."""

import os
import pathlib
import re
import subprocess

import pytest

from git_theta import config
from git_theta.errors import ThetaError

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    """No GIT_THETA_* from the caller, git config from a fresh repository here, read afresh."""
    for name in [k for k in os.environ if k.startswith("GIT_THETA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    monkeypatch.chdir(tmp_path / "repo")
    config._git_config.cache_clear()
    yield
    config._git_config.cache_clear()


def git_config(*args: str) -> None:
    subprocess.run(["git", "config", *args], check=True)
    config._git_config.cache_clear()


def test_defaults_when_nothing_is_set():
    assert config.get_int("max_chain") == 8
    assert config.get_int("low_rank_k") is None
    assert config.get_float("lock_timeout") == 300.0
    assert config.get_float("parameter_atol") is None
    assert config.get_bool("fsync") is True and config.get_bool("manual_merge") is False
    assert config.get_switch("direct_io") is None
    assert config.get_choice("storage_policy") == "bounded" and config.get_choice("verify") == "once"
    assert config.get_level("log_level") == 30
    assert config.get_list("merge_rule") == []
    assert config.get("update_type") == "auto" and config.get("checkpoint_type") is None


def test_every_declared_default_is_a_value_of_its_kind():
    for name, s in config.SETTINGS.items():
        assert s.env is None or s.env.startswith("GIT_THETA_"), name
        assert s.key is None or s.key.startswith("theta."), name
        assert s.env or s.key, name
        config.value(name)  # raises for a default its own kind refuses


def test_the_environment_wins_over_git_config_and_empty_means_unset(monkeypatch):
    git_config("theta.maxConcurrency", "3")
    assert config.max_concurrency() == 3
    monkeypatch.setenv("GIT_THETA_MAX_CONCURRENCY", "5")
    assert config.max_concurrency() == 5
    monkeypatch.setenv("GIT_THETA_MAX_CONCURRENCY", "")
    assert config.max_concurrency() == 3


def test_zero_or_less_concurrency_means_all_cores(monkeypatch):
    monkeypatch.setenv("GIT_THETA_MAX_CONCURRENCY", "0")
    assert config.max_concurrency() == (os.cpu_count() or 1)


@pytest.mark.parametrize(
    "word, expected", [("1", True), ("Yes", True), ("on", True), ("0", False), ("FALSE", False)]
)
def test_flags(monkeypatch, word, expected):
    monkeypatch.setenv("GIT_THETA_MANUAL_MERGE", word)
    assert config.get_bool("manual_merge") is expected


@pytest.mark.parametrize("word, expected", [("auto", None), ("AUTO", None), ("1", True), ("off", False)])
def test_switches(monkeypatch, word, expected):
    monkeypatch.setenv("GIT_THETA_DIRECT_CHECKOUT", word)
    assert config.get_switch("direct_checkout") is expected


def test_numbers_and_choices(monkeypatch):
    monkeypatch.setenv("GIT_THETA_MAX_CHAIN", "3")
    monkeypatch.setenv("GIT_THETA_LOCK_TIMEOUT", "0.5")
    monkeypatch.setenv("GIT_THETA_VERIFY", "never")
    monkeypatch.setenv("GIT_THETA_STORAGE_POLICY", " Smallest ")
    monkeypatch.setenv("GIT_THETA_DIFF_SMUDGE", "full")
    assert config.get_int("max_chain") == 3 and config.get_float("lock_timeout") == 0.5
    assert config.get_choice("verify") == "0" and config.get_choice("storage_policy") == "smallest"
    assert config.get_choice("diff_smudge") == "full"


@pytest.mark.parametrize("word, level", [("debug", 10), ("INFO", 20), ("warn", 30), ("15", 15)])
def test_log_levels(monkeypatch, word, level):
    monkeypatch.setenv("GIT_THETA_LOG_LEVEL", word)
    assert config.get_level("log_level") == level


def test_the_log_level_from_git_config():
    git_config("theta.logLevel", "DEBUG")
    assert config.get_level("log_level") == 10


def test_multi_valued_git_config_keeps_every_value_in_order():
    git_config("--add", "theta.merge.rule", "layers.*=average-ours-theirs")
    git_config("--add", "theta.merge.rule", "head.*=take_us")
    assert config.get_list("merge_rule") == ["layers.*=average-ours-theirs", "head.*=take_us"]


@pytest.mark.parametrize(
    "name, env, word, accepted",
    [
        ("fsync", "GIT_THETA_FSYNC", "maybe", "one of: 1, 0"),
        ("direct_io", "GIT_THETA_DIRECT_IO", "sometimes", "one of: auto, 1, 0"),
        ("max_chain", "GIT_THETA_MAX_CHAIN", "eight", "a whole number of at least 1"),
        ("max_chain", "GIT_THETA_MAX_CHAIN", "0", "a whole number of at least 1"),
        ("save_queue", "GIT_THETA_SAVE_QUEUE", "-1", "a whole number of at least 0"),
        ("low_rank_k", "GIT_THETA_LOW_RANK_K", "2.5", "a whole number of at least 1"),
        ("max_concurrency", "GIT_THETA_MAX_CONCURRENCY", "all", "a whole number"),
        ("fetch_retries", "GIT_THETA_FETCH_RETRIES", "x", "a whole number of at least 0"),
        ("lock_timeout", "GIT_THETA_LOCK_TIMEOUT", "soon", "a number of at least 0"),
        ("fetch_stall_timeout", "GIT_THETA_FETCH_STALL_TIMEOUT", "inf", "a number of at least 0"),
        ("low_memory_share", "GIT_THETA_LOW_MEMORY_SHARE", "nan", "a number of at least 0"),
        ("parameter_atol", "GIT_THETA_PARAMETER_ATOL", "-1e-3", "a number of at least 0"),
        ("verify", "GIT_THETA_VERIFY", "sometimes", "one of: once, always, 0"),
        ("storage_policy", "GIT_THETA_STORAGE_POLICY", "tiny", "one of: bounded, smallest"),
        ("diff_smudge", "GIT_THETA_DIFF_SMUDGE", "half", "one of: auto, full"),
        ("log_level", "GIT_THETA_LOG_LEVEL", "loud", "one of: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_what_it_accepts(
    monkeypatch, name, env, word, accepted
):
    monkeypatch.setenv(env, word)
    with pytest.raises(ThetaError) as info:
        config.value(name)
    text = str(info.value)
    assert text.startswith(f"{env}={word!r} is not {accepted}") and "\n" not in text, text


def test_a_bad_value_from_git_config_names_the_key():
    git_config("theta.fsync", "sure")
    with pytest.raises(ThetaError, match=r"^git config theta.fsync='sure' is not one of: 1, 0"):
        config.get_bool("fsync")


def test_a_getter_of_the_wrong_kind_is_a_bug():
    with pytest.raises(TypeError):
        config.get_bool("max_chain")
    with pytest.raises(TypeError):
        config.get_list("fsync")


def test_nothing_reads_a_git_theta_variable_but_config():
    """Every GIT_THETA_* the package and plug-ins name is declared, and only config reads one."""
    declared = {s.env for s in config.SETTINGS.values()}
    reads = re.compile(  # os.environ["GIT_THETA_X"] = ... sets one for a child: not a read
        r"""(environ\.get\(|getenv\()\s*["']GIT_THETA_|environ\[\s*["']GIT_THETA_\w+["']\](?!\s*=(?!=))"""
    )
    for path in [*(ROOT / "git_theta").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        if "tests" in path.parts:
            continue
        text = path.read_text()
        assert set(re.findall(r"GIT_THETA_[A-Z_]+[A-Z]", text)) <= declared, path
        if path.name != "config.py":
            assert not reads.search(text), f"{path} reads a setting around git_theta.config"


def _readme_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Settings\n") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0] == "| variable | git config | default | meaning |"
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows[2:]]


def test_the_readme_table_is_the_declaration():
    def code(value: str | None) -> str:
        return f"`{value}`" if value else ""

    table = [tuple(row[:3]) for row in _readme_rows()]
    declared = [(code(s.env), code(s.key), code(s.default)) for s in config.SETTINGS.values()]
    assert sorted(table) == sorted(declared)
    assert len(table) == len(set(table))
