"""Sandbox levels: the one definition every layer uses (SDK, spec validation, CLI, head, executor).

The levels are ordered by strictness; compare them with :attr:`SandboxLevel.strictness` or
:meth:`SandboxLevel.at_least`, never with ``<`` on the strings. What each level *does* is the
executor's business (``lattice.executor.sandbox``); this module only names them.
"""

from __future__ import annotations

from enum import StrEnum

_STRICTNESS = {"none": 0, "subprocess": 1, "seccomp": 2, "docker": 3}


class SandboxLevel(StrEnum):
    """How a task is isolated, from weakest to strictest.

    The string values are what the CLI flag ``--sandbox`` and ``@task(sandbox=...)`` take.
    """

    NONE = "none"
    SUBPROCESS = "subprocess"
    SECCOMP = "seccomp"
    DOCKER = "docker"

    @property
    def strictness(self) -> int:
        """0 for ``none`` up to 3 for ``docker``."""
        return _STRICTNESS[self.value]

    @property
    def sandboxed(self) -> bool:
        """True above ``none``: the task's code and everything it produces are untrusted."""
        return self is not SandboxLevel.NONE

    def at_least(self, other: SandboxLevel | str) -> bool:
        """True when this level is as strict as ``other`` or stricter."""
        return self.strictness >= SandboxLevel.parse(other).strictness

    @classmethod
    def names(cls) -> list[str]:
        """Every level's name, weakest first (for choices, hints and error messages)."""
        return [level.value for level in cls]

    @classmethod
    def parse(cls, value: SandboxLevel | str) -> SandboxLevel:
        """The level named by ``value`` (case-insensitive), with a clear error for a bad name."""
        if isinstance(value, SandboxLevel):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"unknown sandbox level {value!r}; expected one of: {', '.join(cls.names())}") from None

    @classmethod
    def strictest(cls, *levels: SandboxLevel | str) -> SandboxLevel:
        """The strictest of ``levels`` (``none`` when given none)."""
        parsed = [cls.parse(level) for level in levels] or [cls.NONE]
        return max(parsed, key=lambda level: level.strictness)


__all__ = ["SandboxLevel"]
