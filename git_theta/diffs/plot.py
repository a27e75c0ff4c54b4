"""`git theta diff --plot FILE.png`: relative change per parameter as bars, grouped by layer."""

import re

from git_theta.diffs.compute import ModelDiff
from git_theta.errors import ThetaError

_LAYER = re.compile(r"^(.*?\d+)[./]")


def layer_of(name: str) -> str:
    """The layer a parameter belongs to: its name up to the first numbered part ("h.3")."""
    m = _LAYER.match(name)
    return m.group(1) if m else name.split(".")[0].split("/")[0]


def plot(diffs: list[ModelDiff], out_path: str) -> int:
    """Write the chart; returns the number of bars. Needs matplotlib (the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ThetaError("--plot needs matplotlib: pip install 'git-theta[plot]'") from None
    bars = []
    for diff in diffs:
        prefix = f"{diff.path}:" if len(diffs) > 1 else ""
        for c in diff.changes:
            if c.numbers is not None and c.numbers.relative is not None:
                bars.append((prefix + layer_of(c.name), prefix + c.name, c.numbers.relative))
    if not bars:
        raise ThetaError("nothing to plot: no modified parameter with a measurable change")
    groups = list(dict.fromkeys(b[0] for b in bars))
    palette = plt.get_cmap("tab10")
    colors = [palette(groups.index(b[0]) % 10) for b in bars]
    fig, ax = plt.subplots(figsize=(10, max(3, 0.22 * len(bars) + 1)))
    ax.barh(range(len(bars)), [b[2] for b in bars], color=colors)
    ax.set_yticks(range(len(bars)), [b[1] for b in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("relative change  ||new - old|| / ||old||")
    ax.set_title("git theta diff: relative change per parameter (color = layer)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return len(bars)
