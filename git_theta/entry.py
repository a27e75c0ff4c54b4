"""The `git-theta` program. The pre-push hook's call (`git-theta pre-push REMOTE [URL]`, run on
every `git push`) goes straight to its command, without click and without the interpreter's
teardown: those were ~50 ms of a ~0.17 s hook here, which Git LFS's own hook (a Go binary) does
not pay. Everything else goes through the click commands in git_theta.cli."""

import sys


def _hook_call(args: list[str]) -> bool:
    """`pre-push REMOTE [URL]` exactly as the hook passes it (no options, nothing else)."""
    return args[:1] == ["pre-push"] and 2 <= len(args) <= 3 and not any(a.startswith("-") for a in args[1:])


def main() -> None:
    args = sys.argv[1:]
    if not _hook_call(args):
        from git_theta.cli import main as cli

        cli()
        return
    from git_theta.errors import user_message
    from git_theta.procs import exit_now

    try:
        from git_theta.commands.pre_push import pre_push

        code = pre_push(args[1], args[2] if len(args) > 2 else "", sys.stdin.read().splitlines())
    except Exception as exc:
        known = user_message(exc)  # said as git_theta.cli says it: one line, exit 1
        if known is None:
            raise
        sys.stderr.write(f"git-theta: error: {known}\n")
        code = 1
    exit_now(code)
