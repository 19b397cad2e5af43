"""Domain errors of the head's core, mapped to HTTP statuses in one place (``lattice.api.errors``)."""

from __future__ import annotations


class NotFound(LookupError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class Conflict(RuntimeError):
    pass


class StoreUnavailable(RuntimeError):
    """The store refuses writes (a full disk, a database that is down): the head answers 503 and keeps what
    it could not commit in memory, committing it in order once the store takes writes again."""
