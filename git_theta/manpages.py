"""Render section-1 man pages for `git theta` and its subcommands from the click command tree.

`git theta --help` runs `man git-theta`; these pages are built from the same click objects that
print `git-theta COMMAND --help`, so the two cannot drift (tests compare the committed pages with
this module's output). Usage: `python -m git_theta.manpages DIR` writes DIR/man1/*.1 (`make man`).
"""

import importlib.metadata
import os
import re
import sys

import click

from git_theta.cli import main as cli_main

PROG = "git-theta"
SEE_ALSO = ["git(1)", "git-lfs(1)", "gitattributes(5)"]


def _escape(text: str) -> str:
    """Escape roff's special characters; `-` becomes `\\-` so options copy-paste as ASCII."""
    return text.replace("\\", "\\e").replace("-", "\\-")


def _inline(text: str) -> str:
    """Escape a line of text, render `code` spans in bold, protect a leading `.` or `'` with `\\&`."""
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", _escape(text))
    return "\\&" + text if text.startswith((".", "'")) else text


def _paragraphs(text: str) -> list[str]:
    """Click's help text as paragraphs of single lines (click's `\\b` markers dropped)."""
    blocks = re.split(r"\n\s*\n", click.unstyle(text or "").strip())
    return [" ".join(line.strip() for line in b.splitlines() if line.strip() != "\b") for b in blocks if b]


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _version() -> str:
    try:
        return importlib.metadata.version(PROG)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _header(page: str, summary: str) -> list[str]:
    title = _escape(page.upper())
    return [
        f'.TH {title} 1 "" "{_escape(PROG)} {_version()}" "Git Theta Manual"',
        ".SH NAME",
        f"{_escape(page)} \\- {_escape(summary.replace('`', '').rstrip('.'))}",
    ]


def _summary(cmd: click.Command) -> str:
    return _paragraphs(cmd.help)[0] if cmd.help else (cmd.short_help or "")


def _options(cmd: click.Command, ctx: click.Context) -> list[str]:
    """One `.TP` entry per option, as `--help` lists them (names, metavar, help, default)."""
    out = [".SH OPTIONS"]
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if record is None:
            continue
        names, help_text = record
        out += [".TP", f"\\fB{_escape(names)}\\fR", _inline(" ".join(help_text.split()))]
    return out


def _arguments(cmd: click.Command, ctx: click.Context) -> list[str]:
    """The positional arguments: their names and how many each takes."""
    args = [p for p in cmd.params if isinstance(p, click.Argument)]
    if not args:
        return []
    out = [".SH ARGUMENTS"]
    for arg in args:
        if arg.nargs == -1:
            count = "One or more values" if arg.required else "Any number of values"
        else:
            count = "One value" if arg.nargs == 1 else f"{arg.nargs} values"
        need = "required" if arg.required else "optional"
        default = arg.get_default(ctx, call=False)
        shown = f", default {default!r}" if isinstance(default, str | int | float) and default != "" else ""
        out += [".TP", f"\\fI{_escape(arg.make_metavar(ctx))}\\fR", f"{count} ({need}{shown})."]
    return out


def _description(cmd: click.Command) -> list[str]:
    out = [".SH DESCRIPTION"]
    for i, para in enumerate(_paragraphs(cmd.help)):
        out += ([".PP"] if i else []) + [_inline(para)]
    return out


def _see_also(extra: list[str]) -> list[str]:
    refs = [f"\\fB{_escape(r.split('(')[0])}\\fR({r.split('(')[1]}" for r in [*extra, *SEE_ALSO]]
    return [".SH SEE ALSO", ", ".join(refs)]


def visible_commands(group: click.Group = cli_main) -> dict[str, click.Command]:
    """The subcommands a user sees in `git theta --help` (hidden ones are internal)."""
    return {name: cmd for name, cmd in sorted(group.commands.items()) if not cmd.hidden}


def _command_page(name: str, cmd: click.Command, parent: click.Context) -> str:
    ctx = click.Context(cmd, info_name=name, parent=parent)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    return _lines(
        *_header(f"{PROG}-{name}", _summary(cmd)),
        ".SH SYNOPSIS",
        f"\\fBgit theta {_escape(name)}\\fR {_escape(usage)}",
        *_description(cmd),
        *_arguments(cmd, ctx),
        *_options(cmd, ctx),
        *_see_also([f"{PROG}(1)"]),
    )


def _main_page(group: click.Group, ctx: click.Context) -> str:
    commands = [".SH COMMANDS"]
    for name, cmd in visible_commands(group).items():
        commands += [".TP", f"\\fB{_escape(PROG)}\\-{_escape(name)}\\fR(1)", _inline(_summary(cmd))]
    return _lines(
        *_header(PROG, _summary(group)),
        ".SH SYNOPSIS",
        "\\fBgit theta\\fR [\\-\\-version] [\\-h | \\-\\-help] \\fICOMMAND\\fR [\\fIARGS\\fR]",
        *_description(group),
        ".PP",
        "\\fBgit theta\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR prints a command's options; "
        f"\\fBman {_escape(PROG)}\\-\\fR\\fICOMMAND\\fR shows its page.",
        *_options(group, ctx),
        *commands,
        *_see_also([]),
    )


def render(group: click.Group = cli_main) -> dict[str, str]:
    """Every page as {file name: roff text}: git-theta.1 and git-theta-<command>.1."""
    ctx = click.Context(group, info_name=PROG, **group.context_settings)
    pages = {f"{PROG}.1": _main_page(group, ctx)}
    for name, cmd in visible_commands(group).items():
        pages[f"{PROG}-{name}.1"] = _command_page(name, cmd, ctx)
    return pages


def write(root: str) -> list[str]:
    """Write the pages to ROOT/man1/, removing stale git-theta pages; return the paths written."""
    folder = os.path.join(root, "man1")
    os.makedirs(folder, exist_ok=True)
    pages = render()
    for stale in set(os.listdir(folder)) - set(pages):
        if stale.startswith(PROG) and stale.endswith(".1"):
            os.remove(os.path.join(folder, stale))
    paths = []
    for name, text in pages.items():
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m git_theta.manpages DIR   (writes DIR/man1/git-theta*.1)", file=sys.stderr)
        return 2
    for path in write(argv[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
