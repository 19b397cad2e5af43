"""Live log chunks: what a worker sends the head while an attempt runs, and the strict parser the head uses.

A running task's stdout/stderr reach the head in batches (see ``lattice.executor.livelog``) as one JSON
document per batch: a list of chunks. The text is written by the task, so it is hostile: the head parses it
as JSON only (never unpickles or evaluates it), checks every field's type and bounds every size before
anything becomes an event, and the UIs render it as text. Both sides import this module, so the format is
written down once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

STREAMS = frozenset({"stdout", "stderr"})
#: most characters of text one chunk may carry (a worker cuts bigger writes into several chunks)
MAX_CHUNK_CHARS = 64 * 1024
#: most chunks one batch may carry, and most bytes its JSON may take
MAX_BATCH_CHUNKS = 256
MAX_BATCH_BYTES = 4 * 1024 * 1024
_MAX_ID_CHARS = 512


class LiveLogError(ValueError):
    """A batch that is not a list of well-formed chunks (its sender is a bug or a hostile task)."""


@dataclass(frozen=True, slots=True)
class LiveLogChunk:
    """Some text one attempt wrote to one stream, numbered per attempt (``chunk``: 0, 1, 2, ...)."""

    run_id: str
    task: str
    attempt_id: str
    stream: str
    text: str
    chunk: int

    def event_data(self) -> dict[str, Any]:
        """The ``task_log`` event's data (the run and task are the event's own fields)."""
        return {"stream": self.stream, "text": self.text, "attempt_id": self.attempt_id, "chunk": self.chunk,
                "live": True}


def encode_batch(chunks: list[LiveLogChunk]) -> bytes:
    return json.dumps([asdict(c) for c in chunks], separators=(",", ":"), ensure_ascii=False).encode()


def _reject_constant(name: str) -> Any:
    raise LiveLogError(f"JSON constant {name} is not allowed")


def parse_batch(raw: bytes) -> list[LiveLogChunk]:
    """The chunks of one batch, or :class:`LiveLogError`: sizes bounded, every field of the right type."""
    if not isinstance(raw, bytes | bytearray) or len(raw) > MAX_BATCH_BYTES:
        raise LiveLogError(f"a batch must be at most {MAX_BATCH_BYTES} bytes of JSON")
    try:
        items = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise LiveLogError(f"a batch is not JSON: {type(exc).__name__}") from None
    if not isinstance(items, list) or len(items) > MAX_BATCH_CHUNKS:
        raise LiveLogError(f"a batch must be a list of at most {MAX_BATCH_CHUNKS} chunks")
    chunks = []
    for item in items:
        if not isinstance(item, dict) or set(item) != set(LiveLogChunk.__dataclass_fields__):
            raise LiveLogError("a chunk must be an object of run_id, task, attempt_id, stream, text and chunk")
        ids = (item["run_id"], item["task"], item["attempt_id"])
        if not all(isinstance(v, str) and 0 < len(v) <= _MAX_ID_CHARS for v in ids):
            raise LiveLogError("a chunk's run_id, task and attempt_id must be non-empty strings")
        if item["stream"] not in STREAMS:
            raise LiveLogError("a chunk's stream must be stdout or stderr")
        if not isinstance(item["text"], str) or len(item["text"]) > MAX_CHUNK_CHARS:
            raise LiveLogError(f"a chunk's text must be a string of at most {MAX_CHUNK_CHARS} characters")
        if type(item["chunk"]) is not int or item["chunk"] < 0:
            raise LiveLogError("a chunk's number must be a non-negative integer")
        chunks.append(LiveLogChunk(**item))
    return chunks


__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_CHUNKS", "MAX_CHUNK_CHARS", "LiveLogChunk", "LiveLogError",
           "encode_batch", "parse_batch"]
