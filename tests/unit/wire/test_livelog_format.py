"""The live log batch format: what the head accepts, and every malformed batch it refuses."""

from __future__ import annotations

import json

import pytest

from lattice.wire.livelog import (
    MAX_BATCH_CHUNKS,
    MAX_CHUNK_CHARS,
    LiveLogChunk,
    LiveLogError,
    encode_batch,
    parse_batch,
)

GOOD = {"run_id": "r", "task": "t", "attempt_id": "r:t:1", "stream": "stdout", "text": "hi", "chunk": 0}


def test_a_batch_round_trips() -> None:
    chunk = LiveLogChunk("r", "t", "r:t:1", "stderr", "<script>alert(1)</script>\n", 3)
    assert parse_batch(encode_batch([chunk])) == [chunk]
    assert chunk.event_data() == {"stream": "stderr", "text": chunk.text, "attempt_id": "r:t:1", "chunk": 3,
                                  "live": True}


@pytest.mark.parametrize("raw", [
    b"not json",
    b"[NaN]",
    json.dumps(GOOD).encode(),  # not a list
    json.dumps([{**GOOD, "extra": 1}]).encode(),
    json.dumps([{k: v for k, v in GOOD.items() if k != "chunk"}]).encode(),
    json.dumps([{**GOOD, "stream": "stdin"}]).encode(),
    json.dumps([{**GOOD, "text": 5}]).encode(),
    json.dumps([{**GOOD, "text": "x" * (MAX_CHUNK_CHARS + 1)}]).encode(),
    json.dumps([{**GOOD, "chunk": -1}]).encode(),
    json.dumps([{**GOOD, "chunk": True}]).encode(),
    json.dumps([{**GOOD, "run_id": ""}]).encode(),
    json.dumps([GOOD] * (MAX_BATCH_CHUNKS + 1)).encode(),
    b"[" * 100_000,
])
def test_a_malformed_batch_is_refused(raw: bytes) -> None:
    with pytest.raises(LiveLogError):
        parse_batch(raw)
