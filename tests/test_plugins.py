"""The plug-in registries: our built-ins from the one table (the same one setup.py registers),
third-party plug-ins found by entry point, and a clear error for a name nobody registered."""

import os
import subprocess
import sys

import pytest

from git_theta import plugins
from git_theta.builtin_plugins import BUILTINS, CHECKPOINTS, ENTRY_POINT_ALIASES, entry_points
from git_theta.errors import ThetaError
from tests.conftest import ROOT

REGISTRIES = [plugins.checkpoints, plugins.updates, plugins.merges]
JSON_PLUGIN = os.path.join(ROOT, "plugins", "json-checkpoint")
MERGE_CLI = os.path.join(ROOT, "plugins", "merge-cli")


def _egg_info_entry_points(project: str, tmp_path) -> str:
    """The entry_points.txt a project's setup.py writes (setuptools' egg_info, in a temp folder)."""
    out = tmp_path / os.path.basename(project)
    out.mkdir()
    subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(out)],
        cwd=project,
        check=True,
        capture_output=True,
    )
    (info,) = out.glob("*.egg-info")
    return (info / "entry_points.txt").read_text()


def _sections(text: str) -> dict[str, set[str]]:
    """entry_points.txt as {group: {"name = target", ...}}."""
    found: dict[str, set[str]] = {}
    group = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            group = found.setdefault(line[1:-1], set())
        elif line and group is not None:
            name, _, target = line.partition("=")
            group.add(f"{name.strip()} = {target.strip()}")
    return found


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_each_builtin_is_its_class(registry):
    for name, target in BUILTINS[registry.group].items():
        cls = registry.get(name)
        assert f"{cls.__module__}:{cls.__name__}" == target and cls.name == name
        assert registry.is_builtin(name.upper()) and name in registry.names()


def test_builtins_are_in_the_order_listed():
    listed = [plugins.checkpoints.get(n) for n in BUILTINS[CHECKPOINTS]]
    assert plugins.checkpoints.classes()[: len(listed)] == listed


def test_entry_point_aliases_are_the_classes_own():
    for aliases in ENTRY_POINT_ALIASES.values():
        for alias, name in aliases.items():
            assert alias in plugins.checkpoints.get(name).aliases
            assert plugins.checkpoints.get(alias) is plugins.checkpoints.get(name)


def test_setup_registers_the_table(tmp_path):
    """setup.py reads the same table: the entry points it writes are the table's, no more."""
    written = _sections(_egg_info_entry_points(ROOT, tmp_path))
    for group, lines in entry_points().items():
        assert written[group] == set(lines)
    assert set(written) == {"console_scripts", *BUILTINS}


def test_merge_cli_setup_registers_its_table(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(MERGE_CLI)
    from git_theta_merge_cli.methods import methods
    from git_theta_merge_cli.methods.builtin import GROUP, METHODS

    written = _sections(_egg_info_entry_points(MERGE_CLI, tmp_path))
    assert written[GROUP] == {f"{name} = {target}" for name, target in METHODS.items()}
    assert methods.builtins == METHODS
    with pytest.raises(ThetaError, match="unknown merge method 'nope'; known: average, "):
        methods.get("nope")


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_unknown_name_is_one_clear_error(registry):
    with pytest.raises(ThetaError) as info:
        registry.get("no-such-plugin")
    message = str(info.value)
    assert message.startswith(f"unknown {registry.kind} 'no-such-plugin'; known: ")
    assert "\n" not in message and all(name in message for name in BUILTINS[registry.group])


def _write_entry_points(tmp_path, lines: list[str]) -> None:
    """A distribution's metadata in tmp_path/site, as pip leaves it."""
    info = tmp_path / "site" / "third_party-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: third-party\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{CHECKPOINTS}]\n" + "\n".join(lines) + "\n")


def _install_entry_points(tmp_path, monkeypatch, lines: list[str]) -> None:
    """A distribution's metadata on sys.path, as pip leaves it: importlib.metadata finds it."""
    _write_entry_points(tmp_path, lines)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(JSON_PLUGIN)


def test_third_party_plugin_by_entry_point(tmp_path, monkeypatch):
    """The sample JSON format, registered by entry point, is found; it cannot take our names."""
    _install_entry_points(
        tmp_path,
        monkeypatch,
        ["json = git_theta_json.format:JsonCheckpoint", "pytorch = git_theta_json.format:JsonCheckpoint"],
    )
    registry = plugins.Registry(CHECKPOINTS, "checkpoint type", BUILTINS[CHECKPOINTS])
    json_cls = registry.get("JSON")
    assert json_cls.__module__ == "git_theta_json.format" and not registry.is_builtin("json")
    assert registry.get("json-checkpoint") is json_cls  # its own alias
    assert registry.get("pytorch") is plugins.checkpoints.get("pytorch")
    assert registry.classes()[-1] is json_cls and "json" in registry.names()


def test_broken_third_party_plugin_is_skipped(tmp_path):
    """A plug-in that fails to import is left out with a one-line warning. In a process of its
    own: logging is set up once per process, at the level the first message found."""
    _write_entry_points(tmp_path, ["broken = no_such_module_here:Nothing"])
    script = (
        "from git_theta import plugins\n"
        "from git_theta.builtin_plugins import BUILTINS, CHECKPOINTS\n"
        "registry = plugins.Registry(CHECKPOINTS, 'checkpoint type', BUILTINS[CHECKPOINTS])\n"
        "print('broken' in registry.names(), 'pytorch' in registry.names())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GIT_THETA_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]
    assert "plug-in broken=no_such_module_here:Nothing failed to load" in proc.stderr
