"""Imports flow one way: entry points -> operations -> updates -> storage -> base modules.

Each module of git_theta/ and of the merge-CLI plug-in is parsed with `ast` and given a layer;
an import (at module level or inside a function) of a higher layer, or of a peer package of the
same layer, fails the test with the file, line and import.
"""

import ast
import os

from tests.conftest import ROOT

# (module prefix, rank, unit): the longest matching prefix decides. A module may import a module of
# lower rank, or of its own unit; peers of one rank (commands/ and api/, filter/ and diffs/) do not
# import each other, like git-lfs's commands/ calling into lfs/ and tq/ but never the reverse.
LAYERS = [
    ("git_theta", 0, "base"),  # config, errors, logs, dtypes, tensor, metadata, codec, git/, formats/, ...
    ("git_theta.storage", 1, "storage"),
    ("git_theta.updates", 2, "updates"),
    ("git_theta.prefetch", 3, "prefetch"),  # what the operations share: fetching what metadata needs
    ("git_theta.filter", 4, "filter"),
    ("git_theta.diffs", 4, "diffs"),
    ("git_theta.merges", 4, "merges"),
    ("git_theta.commands", 5, "commands"),
    ("git_theta.drivers", 5, "drivers"),
    ("git_theta.api", 5, "api"),
    ("git_theta.demo", 5, "demo"),
    ("git_theta_merge_cli", 5, "merge-cli"),
    ("git_theta.__init__", 6, "package"),  # git_theta.save/load/...: the api, imported on first use
    ("git_theta.cli", 7, "cli"),
    ("git_theta.integrations", 7, "integrations"),
    ("git_theta.entry", 8, "entry"),
    ("git_theta.manpages", 8, "manpages"),
]
SOURCES = {"git_theta": ROOT, "git_theta_merge_cli": os.path.join(ROOT, "plugins", "merge-cli")}


def layer(module: str) -> tuple[int, str]:
    """The (rank, unit) of a dotted module name."""
    best = max(
        (p for p in LAYERS if module == p[0] or module.startswith(p[0] + ".")), key=lambda p: len(p[0])
    )
    return best[1], best[2]


def modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of the package and of the merge-CLI plug-in."""
    out = {}
    for package, root in SOURCES.items():
        for folder, _, files in os.walk(os.path.join(root, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    parts = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
                    out[".".join(parts)] = path
    return out


def imported(module: str, tree: ast.AST, known: dict[str, str]) -> list[tuple[int, str]]:
    """(line, module) of each of our modules `tree` imports; `from a import b` means a.b if that is a module."""
    package = module.rsplit(".", 1)[0] if not module.endswith(".__init__") else module[: -len(".__init__")]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                is_module = sub in known or f"{sub}.__init__" in known
                out.append((node.lineno, sub if is_module else base))
    ours = []
    for line, name in out:
        if name in known or f"{name}.__init__" in known:
            ours.append((line, name if name in known else f"{name}.__init__"))
    return ours


def violations(known: dict[str, str]) -> list[str]:
    """One line per import that goes up a layer or sideways into a peer package."""
    found = []
    for module, path in sorted(known.items()):
        rank, unit = layer(module)
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for line, target in sorted(set(imported(module, tree, known))):
            their_rank, their_unit = layer(target)
            if their_unit != unit and their_rank >= rank:
                name = target.removesuffix(".__init__")
                found.append(f"{os.path.relpath(path, ROOT)}:{line} imports {name}")
    return found


def test_every_module_has_a_layer():
    known = modules()
    assert "git_theta.filter.smudge" in known and "git_theta_merge_cli.sources" in known
    assert layer("git_theta.filter.smudge") == (4, "filter") and layer("git_theta.config") == (0, "base")


def test_imports_flow_one_way():
    found = violations(modules())
    assert not found, "imports of a higher layer or a peer package:\n" + "\n".join(found)


def test_an_upward_import_is_found(tmp_path):
    """The check itself: a storage module importing filter/ is reported by file and import."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from git_theta.filter.smudge import main\n")
    known = dict(modules(), **{"git_theta.storage.probe": str(path)})
    assert any(v.endswith("probe.py:2 imports git_theta.filter.smudge") for v in violations(known))
