"""The `git-theta` program, run in the error boundary (git_theta.errors.guarded). The pre-push
hook's call (`git-theta pre-push REMOTE [URL]`, run on every `git push`) goes straight to its
command, without click and without the interpreter's teardown: those were ~50 ms of a ~0.17 s hook here, which Git LFS's own
hook (a Go binary) does not pay. Everything else goes through the click commands in git_theta.cli."""

import sys

from git_theta.errors import guarded


def _hook_call(args: list[str]) -> bool:
    """`pre-push REMOTE [URL]` exactly as the hook passes it (no options, nothing else)."""
    return args[:1] == ["pre-push"] and 2 <= len(args) <= 3 and not any(a.startswith("-") for a in args[1:])


def _pre_push(args: list[str]) -> None:
    from git_theta.commands.pre_push import pre_push

    sys.exit(pre_push(args[1], args[2] if len(args) > 2 else "", sys.stdin.read().splitlines()))


def main() -> None:
    """`git-theta`: the hook's call the short way, anything else through click; both guarded."""
    args = sys.argv[1:]
    if not _hook_call(args):
        from git_theta.cli import main as cli

        sys.exit(guarded(cli))
    from git_theta.procs import exit_now

    exit_now(guarded(lambda: _pre_push(args)))
