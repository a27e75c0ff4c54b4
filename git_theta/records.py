"""Value classes for the modules every git-theta process imports (the pre-push hook among them):
equality and repr over declared fields, without dataclasses, whose import (with inspect) and
class generation cost ~12 ms of a ~110 ms hook here (see git_theta.dtypes)."""


class Record:
    """Equal by the values of `_COMPARED` (in order), shown by them; mutable, so unhashable."""

    _COMPARED: tuple[str, ...] = ()
    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._COMPARED)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in zip(self._COMPARED, self._values()))
        return f"{type(self).__name__}({shown})"
