"""Live logs on the worker's side: batching by time and size, the per-attempt cap, UTF-8 across pipe reads,
and the flusher that sends due batches in order (with a recording ``send`` instead of the relay actor)."""

from __future__ import annotations

import threading
import time

from lattice.executor.livelog import Flusher, LiveLog, truncation_marker
from lattice.wire.livelog import MAX_CHUNK_CHARS, LiveLogChunk, parse_batch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(cap: int = 1000, batch: int = 100, interval: float = 0.5) -> tuple[LiveLog, Clock]:
    clock = Clock()
    return LiveLog("r1", "t", "r1:t:1", cap=cap, batch_chars=batch, interval_s=interval, clock=clock), clock


def test_a_small_write_waits_for_the_interval_then_goes_out_as_one_chunk() -> None:
    live, clock = make()
    live.write("stdout", "hello\n")
    live.write("stdout", "world\n")
    assert live.take() == []  # neither the interval nor the size is reached
    clock.now += 0.49
    assert live.take() == []
    clock.now += 0.02
    assert live.take() == [LiveLogChunk("r1", "t", "r1:t:1", "stdout", "hello\nworld\n", 0)]
    assert live.take() == [] and live.take(force=True) == []


def test_a_batch_that_reaches_the_size_goes_out_at_once() -> None:
    live, _ = make(batch=10)
    live.write("stdout", "0123456789")
    assert [c.text for c in live.take()] == ["0123456789"]


def test_streams_keep_their_order_and_chunks_are_numbered_per_attempt() -> None:
    live, _ = make()
    live.write("stdout", "a")
    live.write("stderr", "b")
    live.write("stdout", "c")
    chunks = live.take(force=True)
    assert [(c.stream, c.text, c.chunk) for c in chunks] == [("stdout", "a", 0), ("stderr", "b", 1), ("stdout", "c", 2)]
    live.write("stdout", "d")
    assert live.take(force=True)[0].chunk == 3


def test_a_long_text_is_cut_into_chunks_the_head_accepts() -> None:
    live, _ = make(cap=3 * MAX_CHUNK_CHARS, batch=10)
    live.write("stdout", "x" * (2 * MAX_CHUNK_CHARS + 5))
    chunks = live.take()
    assert [len(c.text) for c in chunks] == [MAX_CHUNK_CHARS, MAX_CHUNK_CHARS, 5]


def test_past_the_cap_one_marker_is_sent_and_the_rest_only_counted() -> None:
    live, _ = make(cap=10, batch=1000)
    live.write("stdout", "12345678")
    live.write("stdout", "abcdef")  # 2 characters fit
    for _ in range(1000):
        live.write("stderr", "y" * 100)  # memory stays bounded: nothing of this is kept
    assert live.kept == 10 and live.truncated and live.dropped == 4 + 1000 * 100
    text = "".join(c.text for c in live.take(force=True))
    assert text == "12345678ab" + truncation_marker(10)
    live.write("stdout", "more")
    assert live.take(force=True) == []


def test_a_write_that_fills_the_cap_exactly_is_marked_by_the_next_one() -> None:
    live, _ = make(cap=4, batch=1000)
    live.write("stdout", "abcd")
    assert not live.truncated
    live.write("stdout", "e")
    assert live.truncated and live.dropped == 1
    assert "".join(c.text for c in live.take(force=True)) == "abcd" + truncation_marker(4)


def test_utf8_split_across_pipe_reads_is_decoded_whole() -> None:
    live, _ = make()
    data = "héllo ✓\n".encode()
    for i in range(len(data)):
        live.write_bytes("stdout", data[i:i + 1])
    live.write_bytes("stderr", b"\xff bad byte\n")
    chunks = live.take(force=True)
    assert chunks[0].text == "héllo ✓\n"
    assert chunks[1].text == "\ufffd bad byte\n"


class Recorder:
    def __init__(self, accept: bool = True) -> None:
        self.batches: list[list[LiveLogChunk]] = []
        self.accept = accept
        self.lock = threading.Lock()

    def __call__(self, data: bytes, timeout_s: float) -> bool:
        with self.lock:
            self.batches.append(parse_batch(data))  # what is sent parses as the head parses it
        return self.accept


def test_the_flusher_sends_while_the_attempt_runs_and_the_rest_when_it_ends() -> None:
    send = Recorder()
    flusher = Flusher(send, tick_s=0.01)
    live = LiveLog("r1", "t", "r1:t:1", interval_s=0.05)
    flusher.register(live)
    live.write("stdout", "first\n")
    deadline = time.monotonic() + 5
    while not send.batches:
        assert time.monotonic() < deadline, "the first line was never sent"
        time.sleep(0.01)
    assert send.batches[0][0].text == "first\n"
    live.write("stdout", "last\n")
    flusher.finish(live)  # at once, not after the interval
    sent = [c for batch in send.batches for c in batch]
    assert [c.text for c in sent] == ["first\n", "last\n"] and [c.chunk for c in sent] == [0, 1]
    assert live.sent_chunks == 2 and live.lost_chunks == 0


def test_a_refused_batch_is_counted_and_not_kept() -> None:
    send = Recorder(accept=False)
    flusher = Flusher(send, tick_s=3600)
    live = LiveLog("r1", "t", "r1:t:1")
    flusher.register(live)
    live.write("stdout", "x")
    flusher.finish(live)
    assert live.lost_chunks == 1 and live.take(force=True) == []
