"""Per-thread capture of ``print`` output inside a shared worker process.

The I/O executor runs many tasks as threads of one process, so swapping ``sys.stdout`` for one task
would steal the output of the others. Instead one routing stream is installed once; it writes to the
capturing buffer of the current thread, or to the original stream when the thread captures nothing.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_local = threading.local()
_install_lock = threading.Lock()


class _CappedBuffer(io.StringIO):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.dropped = 0

    def write(self, text: str) -> int:
        room = self.limit - self.tell()
        if room <= 0:
            self.dropped += len(text)
            return len(text)
        if len(text) > room:
            self.dropped += len(text) - room
            text = text[:room]
        return super().write(text)

    def text(self) -> str:
        value = self.getvalue()
        if self.dropped:
            value += f"\n[lattice: {self.dropped} more characters not kept]\n"
        return value


class _RoutingStream(io.TextIOBase):
    def __init__(self, name: str, fallback: TextIO) -> None:
        self.name = name
        self.fallback = fallback

    def _target(self) -> TextIO:
        return getattr(_local, self.name, None) or self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        target = self._target()
        if hasattr(target, "flush"):
            target.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _RoutingStream):
            sys.stdout = _RoutingStream("stdout", sys.stdout)
        if not isinstance(sys.stderr, _RoutingStream):
            sys.stderr = _RoutingStream("stderr", sys.stderr)


@contextmanager
def capture_output(limit: int = 1 << 20) -> Iterator[tuple[_CappedBuffer, _CappedBuffer]]:
    """Capture what the current thread prints, keeping at most ``limit`` characters per stream."""
    _install()
    out, err = _CappedBuffer(limit), _CappedBuffer(limit)
    _local.stdout, _local.stderr = out, err
    try:
        yield out, err
    finally:
        _local.stdout = _local.stderr = None
