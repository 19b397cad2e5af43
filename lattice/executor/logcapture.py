"""Per-thread capture of ``print`` output inside a shared worker process.

The I/O executor runs many tasks as threads of one process, so swapping ``sys.stdout`` for one task
would steal the output of the others. Instead one routing stream is installed once; it writes to the
capturing buffer of the current thread, or to the original stream when the thread captures nothing.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable, Iterator
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


class _Tee(io.TextIOBase):
    """Writes to the attempt's buffer and to its live log (``lattice.executor.livelog``)."""

    def __init__(self, buffer: _CappedBuffer, live: Callable[[str, str], None], stream: str) -> None:
        self.buffer, self.live, self.stream = buffer, live, stream

    def write(self, text: str) -> int:
        self.live(self.stream, text)
        return self.buffer.write(text)


@contextmanager
def capture_output(limit: int = 1 << 20, live: Callable[[str, str], None] | None = None,
                   ) -> Iterator[tuple[_CappedBuffer, _CappedBuffer]]:
    """Capture what the current thread prints, keeping at most ``limit`` characters per stream; each write
    also goes to ``live(stream, text)`` when given."""
    _install()
    out, err = _CappedBuffer(limit), _CappedBuffer(limit)
    if live is None:
        _local.stdout, _local.stderr = out, err
    else:
        _local.stdout, _local.stderr = _Tee(out, live, "stdout"), _Tee(err, live, "stderr")
    try:
        yield out, err
    finally:
        _local.stdout = _local.stderr = None
