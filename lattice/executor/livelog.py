"""Live logs on the worker's side: batch what a running attempt prints and send it to the head as it runs.

Without this a task's output reached the head only in the attempt's envelope, when it ended. Now each
attempt that runs inside a Ray job gets a :class:`LiveLog` (``live_attempt``): the level-``none`` capture
(``logcapture``) and the sandbox's pipe reader (``sandbox/subprocess_level.py``) both write into it, and one
flusher thread per worker process sends what is due to the head's relay actor (``livelog_relay``):

* **batched**: an attempt's pending text goes out when it has waited :data:`BATCH_INTERVAL_S` or reached
  :data:`BATCH_CHARS`, so a task printing in a tight loop costs a few actor calls a second, not one per line;
* **bounded**: at most ``cap`` characters per attempt are sent (the attempt's log limit, 1 MiB by default).
  Beyond it one marker line says the live log stopped, and the rest is only counted; memory held per attempt
  never exceeds the cap. The attempt's own record (the final ``task_log`` event, ``GET /runs/{id}/logs``)
  keeps its usual limit, so nothing the live log drops is lost from there;
* **best effort**: a batch the relay refuses (it is full) or cannot be reached for is dropped and counted,
  never retried in a loop or kept; the task itself never waits on the head, only its last flush does,
  for at most :data:`FINAL_FLUSH_TIMEOUT_S`.

Outside a Ray job (unit tests calling ``run_task`` directly) there is no relay and nothing is sent.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lattice.wire.livelog import MAX_BATCH_CHUNKS, MAX_CHUNK_CHARS, STREAMS, LiveLogChunk, encode_batch

log = logging.getLogger("lattice.livelog")

RELAY_NAME = "lattice-live-logs"
BATCH_INTERVAL_S = 0.5
BATCH_CHARS = 16 * 1024
DEFAULT_CAP_CHARS = 1024 * 1024
TICK_S = 0.1
FINAL_FLUSH_TIMEOUT_S = 2.0
#: after a failed send, how long a process waits before it looks the relay up again
RETRY_AFTER_S = 10.0


def truncation_marker(cap: int) -> str:
    return (f"\n[lattice: the live log of this attempt stopped after {cap} characters; "
            "the attempt's log, when it ends, keeps its own tail]\n")


class LiveLog:
    """The pending live output of one attempt: thread-safe writes, batched takes, a hard cap.

    ``clock`` is injectable so the batching rules are tested without sleeping.
    """

    def __init__(self, run_id: str, task: str, attempt_id: str, cap: int = DEFAULT_CAP_CHARS,
                 batch_chars: int = BATCH_CHARS, interval_s: float = BATCH_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.run_id, self.task, self.attempt_id = run_id, task, attempt_id
        self.cap = cap
        self.batch_chars = batch_chars
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        #: held while a batch of this attempt is taken and sent, so its chunks reach the relay in order
        self.send_lock = threading.Lock()
        self._pending: list[list[str]] = []  # [stream, text] pieces, a stream's consecutive writes merged
        self._pending_chars = 0
        self._since: float | None = None
        self._next_chunk = 0
        self.kept = 0  # characters accepted (sent or pending), at most ``cap``
        self.dropped = 0  # characters written past the cap
        self.truncated = False
        self.sent_chunks = 0
        self.lost_chunks = 0  # chunks the relay refused or could not be reached for
        self._decoders = {s: codecs.getincrementaldecoder("utf-8")(errors="replace") for s in STREAMS}

    def write(self, stream: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            room = self.cap - self.kept
            if len(text) > room:
                self.dropped += len(text) - room
                text = text[:room]
            if text:
                self._append(stream, text)
                self.kept += len(text)
            if self.kept == self.cap and self.dropped and not self.truncated:
                self.truncated = True  # said once, when the first character does not fit
                self._append(stream, truncation_marker(self.cap))

    def write_bytes(self, stream: str, data: bytes) -> None:
        """Raw bytes from a sandbox's pipe: decoded as UTF-8 across reads (a character may span two)."""
        self.write(stream, self._decoders[stream].decode(data))

    def _append(self, stream: str, text: str) -> None:
        if self._pending and self._pending[-1][0] == stream:
            self._pending[-1][1] += text
        else:
            self._pending.append([stream, text])
        self._pending_chars += len(text)
        if self._since is None:
            self._since = self._clock()

    def due(self) -> bool:
        with self._lock:
            return self._due()

    def _due(self) -> bool:
        if not self._pending_chars or self._since is None:
            return False
        return self._pending_chars >= self.batch_chars or self._clock() - self._since >= self.interval_s

    def take(self, force: bool = False) -> list[LiveLogChunk]:
        """The pending text as numbered chunks (each at most ``MAX_CHUNK_CHARS``), if due or ``force``."""
        with self._lock:
            if not (self._due() if not force else self._pending_chars):
                return []
            pieces, self._pending, self._pending_chars, self._since = self._pending, [], 0, None
            chunks = []
            for stream, text in pieces:
                for start in range(0, len(text), MAX_CHUNK_CHARS):
                    chunks.append(LiveLogChunk(self.run_id, self.task, self.attempt_id, stream,
                                               text[start:start + MAX_CHUNK_CHARS], self._next_chunk))
                    self._next_chunk += 1
            return chunks

    def sink(self, stream: str) -> Callable[[bytes], None]:
        """A ``write(bytes)`` for one stream (what the sandbox's tail buffers call)."""
        return lambda data: self.write_bytes(stream, data)


Send = Callable[[bytes, float], bool]


def send_chunks(live: LiveLog, chunks: list[LiveLogChunk], send: Send, timeout_s: float) -> None:
    for start in range(0, len(chunks), MAX_BATCH_CHUNKS):
        part = chunks[start:start + MAX_BATCH_CHUNKS]
        if send(encode_batch(part), timeout_s):
            live.sent_chunks += len(part)
        else:
            live.lost_chunks += len(part)


class Flusher:
    """One thread per process: every :data:`TICK_S` it sends each registered attempt's due batch."""

    def __init__(self, send: Send, tick_s: float = TICK_S) -> None:
        self._send = send
        self._tick_s = tick_s
        self._active: set[LiveLog] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, live: LiveLog) -> None:
        with self._lock:
            self._active.add(live)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lattice-live-logs", daemon=True)
                self._thread.start()

    def finish(self, live: LiveLog) -> None:
        """The attempt ended: send what is left now (in the ending thread) and forget it."""
        with self._lock:
            self._active.discard(live)
        self.flush(live, force=True, timeout_s=FINAL_FLUSH_TIMEOUT_S)

    def flush(self, live: LiveLog, force: bool = False, timeout_s: float = 5.0) -> None:
        with live.send_lock:
            chunks = live.take(force)
            if chunks:
                send_chunks(live, chunks, self._send, timeout_s)

    def _run(self) -> None:
        while True:
            time.sleep(self._tick_s)
            with self._lock:
                active = list(self._active)
            for live in active:
                try:
                    self.flush(live)
                except Exception:
                    log.exception("sending a live log batch failed")


class RelaySender:
    """Sends a batch to the head's relay actor, looked up by name in this Ray job's namespace."""

    def __init__(self) -> None:
        self._handle: Any = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, data: bytes, timeout_s: float) -> bool:
        import ray

        handle = self._relay()
        if handle is None:
            return False
        try:
            return bool(ray.get(handle.push.remote(data), timeout=timeout_s))
        except Exception as exc:  # noqa: BLE001 - the head went away, a timeout: drop the batch
            log.debug("live log relay unreachable: %s", exc)
            with self._lock:
                self._handle, self._retry_at = None, time.monotonic() + RETRY_AFTER_S
            return False

    def _relay(self) -> Any:
        import ray

        with self._lock:
            if self._handle is None and time.monotonic() >= self._retry_at:
                try:
                    self._handle = ray.get_actor(RELAY_NAME)
                except Exception:  # noqa: BLE001 - no relay (a head without live logs): try later
                    self._retry_at = time.monotonic() + RETRY_AFTER_S
            return self._handle


_local = threading.local()
_flusher: Flusher | None = None
_flusher_lock = threading.Lock()


def _process_flusher() -> Flusher | None:
    """This process's flusher, or None outside a Ray job (there is no head to send to)."""
    global _flusher
    try:
        import ray

        if not ray.is_initialized():
            return None
    except ImportError:
        return None
    with _flusher_lock:
        if _flusher is None:
            _flusher = Flusher(RelaySender())
        return _flusher


def current() -> LiveLog | None:
    """The live log of the attempt this thread runs (the sandbox's pipe reader tees into it)."""
    return getattr(_local, "live", None)


@contextmanager
def live_attempt(run_id: str, task: str, attempt_id: str, cap: int = DEFAULT_CAP_CHARS) -> Iterator[LiveLog | None]:
    """Stream this thread's attempt's output live while the block runs (None: nowhere to send it)."""
    flusher = _process_flusher() if run_id else None
    if flusher is None:
        yield None
        return
    live = LiveLog(run_id, task, attempt_id, cap=cap)
    _local.live = live
    flusher.register(live)
    try:
        yield live
    finally:
        _local.live = None
        try:
            flusher.finish(live)
        except Exception:
            log.exception("the last live log batch of %s failed", attempt_id)


__all__ = ["RELAY_NAME", "Flusher", "LiveLog", "RelaySender", "current", "live_attempt", "send_chunks",
           "truncation_marker"]
