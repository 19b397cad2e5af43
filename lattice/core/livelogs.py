"""Live log batches into ``task_log`` events: parsed strictly, bounded per attempt, then handed to the loop.

Batches arrive on the live-log reader's thread (``lattice.executor.livelog_relay``) as raw JSON bytes that a
task's output filled. Here they are parsed by :func:`lattice.wire.livelog.parse_batch` (a malformed batch is
dropped whole and counted), and each attempt may publish at most ``cap_chars`` characters live: the head
enforces the bound itself rather than trusting every worker to. What passes goes to
:meth:`Orchestrator.post_task_logs`, which, on its loop, turns the chunks of attempts still running into
``task_log`` events (``data.live: true``) stored and published like every other event, so a client that
reconnects resumes them by sequence number.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Protocol

from lattice.wire.livelog import LiveLogChunk, LiveLogError, parse_batch

log = logging.getLogger("lattice.livelog")

#: the workers' own cap per attempt (``lattice.executor.livelog``), plus room for the marker they add at it
DEFAULT_CAP_CHARS = 1024 * 1024 + 4096
#: attempts whose live-log budget is remembered (the oldest are forgotten first)
TRACKED_ATTEMPTS = 50_000


class TaskLogTarget(Protocol):
    def post_task_logs(self, chunks: list[LiveLogChunk]) -> None: ...


class LiveLogSink:
    """``deliver(raw)`` from one thread (the reader's); not thread-safe beyond that, by design."""

    def __init__(self, target: TaskLogTarget, cap_chars: int = DEFAULT_CAP_CHARS) -> None:
        self.target = target
        self.cap_chars = cap_chars
        self._published: OrderedDict[str, int] = OrderedDict()
        self.refused_batches = 0
        self.dropped_chars = 0

    def deliver(self, raw: bytes) -> None:
        try:
            chunks = parse_batch(raw)
        except LiveLogError as exc:
            self.refused_batches += 1
            log.warning("refused a live log batch: %s", exc)
            return
        accepted = [c for c in (self._bounded(c) for c in chunks) if c is not None]
        if accepted:
            self.target.post_task_logs(accepted)

    def _bounded(self, chunk: LiveLogChunk) -> LiveLogChunk | None:
        published = self._published.get(chunk.attempt_id, 0)
        room = self.cap_chars - published
        if room <= 0:
            self.dropped_chars += len(chunk.text)
            return None
        text = chunk.text
        if len(text) > room:
            self.dropped_chars += len(text) - room
            text = text[:room] + f"\n[lattice: the head keeps at most {self.cap_chars} live characters per attempt]\n"
        self._published[chunk.attempt_id] = published + min(len(chunk.text), room)
        self._published.move_to_end(chunk.attempt_id)
        while len(self._published) > TRACKED_ATTEMPTS:
            self._published.popitem(last=False)
        if text is chunk.text:
            return chunk
        return LiveLogChunk(chunk.run_id, chunk.task, chunk.attempt_id, chunk.stream, text, chunk.chunk)


__all__ = ["LiveLogSink", "TaskLogTarget"]
