"""Domain errors of the head's core, mapped to HTTP statuses in one place (``lattice.api.errors``)."""

from __future__ import annotations


class NotFound(LookupError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class Conflict(RuntimeError):
    pass
