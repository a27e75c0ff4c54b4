"""`git-theta-merge-cli`: argument-compatible with the original plug-in; `--x:name=value` args."""

import argparse
import os
import sys

from git_theta.errors import ThetaError, guarded
from git_theta.logs import get_logger

log = get_logger(__name__)


def split_method_args(argv: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Pull `--x:name=value` / `--x:name value` out of argv (repeatable into lists)."""
    rest, found = [], {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--x:"):
            key, sep, value = a[4:].partition("=")
            if not sep:
                if i + 1 >= len(argv):
                    raise ThetaError(f"{a} needs a value (--x:{key}=VALUE)")
                value = argv[i + 1]
                i += 1
            if not key:
                raise ThetaError(f"{a}: give the argument a name, as --x:name=value")
            found.setdefault(key, []).append(value)
        else:
            rest.append(a)
        i += 1
    return rest, found


def parser() -> argparse.ArgumentParser:
    from git_theta_merge_cli import methods

    p = argparse.ArgumentParser(
        prog="git-theta-merge-cli",
        description="Merge models tracked by git-theta, one parameter at a time, and commit the result.",
        epilog="Methods: " + ", ".join(methods.names()) + " (a -gpu suffix means --device cuda). "
        "Method arguments: --x:name=value, repeat for lists; `--list-methods` shows each method's.",
    )
    p.add_argument(
        "--models", nargs="+", metavar="MODEL", help="tracked checkpoints (PATH at HEAD, or REV:PATH)"
    )
    p.add_argument(
        "--aux_data", "--aux-data", nargs="+", default=[], metavar="AUX", help="per-model aux data"
    )
    p.add_argument("--ancestor", default=None, help="the models' common ancestor (PATH or REV:PATH)")
    p.add_argument(
        "--merge",
        "--method",
        dest="merge",
        metavar="METHOD",
        default="average",
        help="merge method (default average, as the original's variadic-average)",
    )
    p.add_argument("--output", "-o", help="where the merged checkpoint goes (committed and checked out)")
    p.add_argument("--message", "-m", default=None, help="commit message (method and arguments are appended)")
    p.add_argument(
        "--device", default=None, help="cpu or cuda (default cpu; cuda for a -gpu method where CUDA exists)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random methods (DARE, DELLA)")
    p.add_argument(
        "--limit-concurrency",
        "--limit_concurrency",
        type=int,
        default=None,
        metavar="N",
        help="at most N worker threads (the original plug-in's flag; sets GIT_THETA_MAX_CONCURRENCY)",
    )
    p.add_argument(
        "--test_run",
        "--test-run",
        type=int,
        default=None,
        metavar="N",
        help="merge and output only the first N parameters (and transformer.lm_head.weight), for a trial",
    )
    p.add_argument("--list-methods", action="store_true", help="list methods with their arguments and exit")
    return p


def describe_methods() -> str:
    from git_theta_merge_cli import methods

    lines = []
    for cls in methods.methods.classes():
        m = cls()
        needs = [
            w
            for w, on in (("--ancestor", m.needs_ancestor), (f"--aux_data ({m.aux_kind})", m.aux_kind))
            if on
        ]
        lines.append(f"{m.name}: {m.description}" + (f" [needs {', '.join(needs)}]" if needs else ""))
        for a in m.args:
            lines.append(
                f"    --x:{a.name}={a.type.__name__}{' (repeatable)' if a.many else ''}  {a.help} [default {a.default}]"
            )
    lines.append("lora-<method>: <method> on LoRA products B @ A (methods without aux data)")
    return "\n".join(lines)


def _run(argv: list[str] | None) -> None:
    get_logger()  # GIT_THETA_LOG_LEVEL applies
    from git_theta.memory import limit_arenas

    limit_arenas(1)  # memory is this tool's promise: one malloc arena for all decoding threads
    rest, xargs = split_method_args(list(sys.argv[1:] if argv is None else argv))
    ns = parser().parse_args(rest)
    if ns.list_methods:
        print(describe_methods())
        return
    missing = [f for f, v in (("--models", ns.models), ("--output", ns.output)) if not v]
    if missing:
        raise ThetaError(f"missing {', '.join(missing)} (see --help)")
    if "device" in xargs:  # the original's -gpu methods take --x:device (e.g. cpu where no CUDA is)
        ns.device = ns.device or xargs.pop("device")[-1]
    if ns.device is not None and ns.device not in ("cpu", "cuda") and not ns.device.startswith("cuda:"):
        raise ThetaError(f"--device {ns.device!r}: use cpu or cuda")
    if ns.limit_concurrency is not None:
        if ns.limit_concurrency < 1:
            raise ThetaError("--limit-concurrency must be at least 1")
        os.environ["GIT_THETA_MAX_CONCURRENCY"] = str(ns.limit_concurrency)
    from git_theta_merge_cli.merge import Request, run

    commit = run(
        Request(
            ns.models,
            ns.merge,
            ns.output,
            ns.aux_data,
            ns.ancestor,
            xargs,
            ns.message,
            ns.device,
            ns.seed,
            ns.test_run,
        )
    )
    print(f"{ns.output}: merged with {ns.merge}, commit {commit[:12]}")


def main(argv: list[str] | None = None) -> None:
    """`git-theta-merge-cli`, in git-theta's error boundary: a failure is one line, exit 1."""
    sys.exit(guarded(lambda: _run(argv), "git-theta-merge-cli"))


if __name__ == "__main__":
    main()
