"""The interactive resolver: one prompt per conflicting parameter, on the terminal (prompt_toolkit)."""

import numpy as np

from git_theta import plugins
from git_theta.errors import ThetaError
from git_theta.merges import advice
from git_theta.merges.apply import sides_of
from git_theta.merges.base import compute
from git_theta.merges.plan import Choice, Conflict, parse_choice
from git_theta.storage.lfs_store import LfsStore


class Aborted(ThetaError):
    """The user quit the resolver."""


def open_terminal():
    """(input, output) files on the controlling terminal, or None without one."""
    try:
        return open("/dev/tty"), open("/dev/tty", "w")
    except OSError:
        return None


def _change(side: np.ndarray | None, ancestor: np.ndarray | None) -> str:
    if side is None:
        return "deleted"
    if ancestor is None:
        return "added"
    if side.shape != ancestor.shape:
        return f"shape {list(ancestor.shape)} -> {list(side.shape)}"
    a, s = compute(ancestor), compute(side)
    norm = float(np.linalg.norm(a))
    diff = float(np.linalg.norm(s - a))
    rel = f"{diff / norm:.3e}" if norm else "n/a"
    return f"rel change {rel}, changed {np.count_nonzero(s != a) / max(1, a.size):.1%}"


def ask(conflicts: list[Conflict], store: LfsStore, path: str, terminal) -> dict[str, Choice]:
    """Ask for a strategy per conflict; `N!` applies to all remaining; `q` aborts the merge."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.input import create_input
    from prompt_toolkit.output import create_output

    tty_in, tty_out = terminal
    session = PromptSession(input=create_input(tty_in), output=create_output(tty_out))
    say = tty_out.write
    say(f"git-theta: {path}: {len(conflicts)} parameter(s) changed on both sides\n")
    chosen: dict[str, Choice] = {}
    sticky: Choice | None = None
    strategies = [cls() for cls in plugins.merges.classes()]
    for i, c in enumerate(conflicts, 1):
        usable = [
            s
            for s in strategies
            if s.applicable(c.state, c.present(), c.same_shape(), encoded=bool(c.encoded))
            and s.name != "context"
        ]
        if sticky is not None and any(type(s) is type(sticky.strategy) for s in usable):
            chosen[c.name] = sticky
            continue
        sides = sides_of(c, store)
        entry = c.ours or c.theirs or c.ancestor
        shown = f"{c.encoded} (quantized: take a side)" if c.encoded else f"{entry.dtype}{list(entry.shape)}"
        say(f"\n[{i}/{len(conflicts)}] {c.name}  {shown}  ({c.state})\n")
        say(
            f"  ours:   {_change(sides.ours, sides.ancestor)}\n  theirs: {_change(sides.theirs, sides.ancestor)}\n"
        )
        for k, s in enumerate(usable, 1):
            extra = "".join(f" [{a.name}={a.default}]" for a in s.args)
            say(f"  {k}) {s.name}{extra}: {s.description}\n")
        say("  choose a number (then optional name=value args); add ! to apply to all remaining; q aborts\n")
        tty_out.flush()
        while True:
            answer = session.prompt("choice> ").strip()
            if answer.lower() in ("q", "quit"):
                raise Aborted(advice.left_as_ours(path, "you quit the merge resolver"))
            apply_all = answer.endswith("!") or " !" in answer
            answer = answer.replace("!", " ").strip()
            number, _, args = answer.partition(" ")
            if not number.isdigit() or not 1 <= int(number) <= len(usable):
                say(f"  please answer 1-{len(usable)} or q\n")
                continue
            strategy = usable[int(number) - 1]
            try:
                choice = parse_choice(
                    strategy.name + (":" + args.replace(" ", ",") if args else ""), "choice"
                )
            except ThetaError as exc:
                say(f"  {exc}\n")
                continue
            chosen[c.name] = choice
            if apply_all:
                sticky = choice
            break
    return chosen
