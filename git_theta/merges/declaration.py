"""What every merge declares, in both hierarchies: a name, aliases, a description, typed arguments.

Shared by the git merge driver's strategies (git_theta.merges.base.MergeStrategy) and the merge
CLI's methods (git_theta_merge_cli.methods.base.MergeMethod); each words its own errors.
"""

from dataclasses import dataclass

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Arg:
    """One typed, documented argument (`many`: repeatable, its value a list)."""

    name: str
    type: type  # float, int, str or bool; with many=True a list of them
    default: object
    help: str
    many: bool = False

    def convert(self, value: object) -> object:
        """One value as `type` (bool from on/off words); ValueError or TypeError if it is not one."""
        if self.type is bool and isinstance(value, str):
            if value.lower() not in _TRUE + _FALSE:
                raise ValueError(value)
            return value.lower() in _TRUE
        return self.type(value)


class Declared:
    """The declaration both merge hierarchies share; extend MergeStrategy (a git merge-driver
    strategy) or MergeMethod (a merge-CLI method), never this class directly."""

    name: str = ""
    aliases: tuple[str, ...] = ()
    description: str = ""
    args: tuple[Arg, ...] = ()

    def unknown_args(self, raw: dict) -> list[str]:
        """The names in `raw` that are none of this merge's arguments, sorted."""
        return sorted(set(raw) - {a.name for a in self.args})
