"""Admission to one pool: a cap that holds across every caller, a bounded queue, fair turns between runs.

Every request to a pool, from any task, run or human, passes one :class:`Gate` on the head, so the cap is
the pool's and not a replica's or a caller's: ``max_concurrency`` requests are in flight at the engines,
at most ``per_replica_cap`` on any one replica, and at most ``max_queue`` wait. Beyond the queue the gate
refuses at once (:class:`QueueFull` -> ``429`` with ``Retry-After``); a request that waited
``queue_timeout_s`` gets :class:`QueueTimeout` (``503``). Nothing is dropped silently.

Fairness is start-time fair queuing on *tokens served*: each run has a virtual clock, the tokens its
requests used (charged an estimate at grant time, corrected to the engine's ``usage`` when it ends).
A free slot goes to the waiting run whose clock is lowest; a run that arrives (or comes back after being
idle) starts at the lowest clock of the runs that are active, so idling earns no credit. Hence the bound
stated in ``docs/llm.md``: a run whose clock is not ahead of a flooder's gets the next slot that frees,
so its request waits at most for one slot to free per request of its own (or of another such run) queued
before it, whatever the flooder sends.

Pure asyncio and no I/O: replicas are anything with ``in_flight``, ``cap`` and ``ready``; the caller
routes (:meth:`Gate.acquire` returns the replica chosen) and reports the end (:meth:`Gate.release`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Slot(Protocol):
    """A replica as the gate sees it."""

    in_flight: int
    cap: int

    @property
    def ready(self) -> bool: ...


class GateError(Exception):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(GateError):
    """Cap reached and the queue is at its bound: answer 429 with Retry-After."""


class QueueTimeout(GateError):
    """Waited ``queue_timeout_s`` without a slot (no replica became ready, or the pool is overloaded)."""


class GateClosed(GateError):
    """The pool was stopped, or its replicas cannot start: the waiter gets the reason."""


@dataclass(eq=False)
class _Waiter:
    run: str
    estimate: float
    future: asyncio.Future[Slot]
    enqueued: float
    exclude: frozenset[int] = frozenset()


@dataclass
class Grant:
    """One admitted request: where it goes and what it was charged so far."""

    run: str
    slot: Slot
    charged: float
    waited_s: float


@dataclass
class RateLimit:
    """Requests and tokens per minute (external providers): a sliding 60 s window."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    _requests: deque[float] = field(default_factory=deque)
    _tokens: deque[tuple[float, float]] = field(default_factory=deque)

    def wait_s(self, now: float, estimate: float) -> float:
        """0 when a request of ``estimate`` tokens may start now, else seconds until it may."""
        self._trim(now)
        waits = [0.0]
        if self.requests_per_minute and len(self._requests) >= self.requests_per_minute:
            waits.append(self._requests[0] + 60.0 - now)
        if self.tokens_per_minute:
            used = sum(n for _, n in self._tokens)
            if self._tokens and used + estimate > self.tokens_per_minute:
                waits.append(self._tokens[0][0] + 60.0 - now)
        return max(waits)

    def record_request(self, now: float) -> None:
        self._requests.append(now)

    def record_tokens(self, now: float, tokens: float) -> None:
        if tokens > 0:
            self._tokens.append((now, tokens))

    def _trim(self, now: float) -> None:
        while self._requests and self._requests[0] <= now - 60.0:
            self._requests.popleft()
        while self._tokens and self._tokens[0][0] <= now - 60.0:
            self._tokens.popleft()


class Gate:
    def __init__(self, max_concurrency: int, max_queue: int, queue_timeout_s: float,
                 slots: Callable[[], Sequence[Slot]], rate: RateLimit | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self._slots = slots
        self._rate = rate
        self._clock = clock
        self._queues: dict[str, deque[_Waiter]] = {}
        self._clock_of: dict[str, float] = {}  # run -> tokens served (its virtual clock)
        self._active: dict[str, int] = {}  # run -> requests in flight
        self.in_flight = 0
        self.queued = 0
        self._affinity: dict[str, int] = {}  # run -> id() of the replica it used last
        self._service_s = 1.0  # moving average of a request's time in flight, for Retry-After
        self._wake: asyncio.TimerHandle | None = None
        self._closed: str | None = None

    # --- the caller's side --------------------------------------------------------------------------

    async def acquire(self, run: str, estimate: float = 16.0, exclude: frozenset[int] = frozenset(),
                      readmit: bool = False) -> Grant:
        """Wait for a slot (fair between runs); raises :class:`QueueFull` at once when the queue is full.

        ``readmit``: a request the gate already took whose replica failed under it; it is not refused for
        a full queue (it was inside the bound when it came), so a crash never turns into 429s."""
        if self._closed is not None:
            raise GateClosed(self._closed, retry_after=5.0)
        loop = asyncio.get_running_loop()
        if not readmit and self.queued >= self.max_queue and not self._can_grant_now(exclude):
            raise QueueFull(f"{self.in_flight} requests in flight (cap {self.max_concurrency}) and {self.queued} "
                            f"queued (bound {self.max_queue})", retry_after=self.retry_after())
        now = self._clock()
        if run not in self._queues and not self._active.get(run):
            # (re)joining: no credit for the time it was idle
            self._clock_of[run] = max(self._clock_of.get(run, 0.0), self._min_active_clock())
        waiter = _Waiter(run, estimate, loop.create_future(), now, exclude)
        self._queues.setdefault(run, deque()).append(waiter)
        self.queued += 1
        self._pump()
        try:
            slot = await asyncio.wait_for(asyncio.shield(waiter.future), timeout=self.queue_timeout_s)
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                slot = waiter.future.result()  # granted just as the timer fired
            else:
                self._forget(waiter)
                raise QueueTimeout(f"no slot within {self.queue_timeout_s:g} s", retry_after=self.retry_after()) \
                    from None
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self._undo(run, waiter.future.result(), estimate)
            else:
                self._forget(waiter)
            raise
        return Grant(run, slot, estimate, self._clock() - now)

    def release(self, grant: Grant, tokens: float | None = None, seconds: float | None = None) -> None:
        """The request ended; ``tokens`` (prompt + completion) corrects the estimate it was charged."""
        grant.slot.in_flight = max(0, grant.slot.in_flight - 1)
        self.in_flight = max(0, self.in_flight - 1)
        self._active[grant.run] = max(0, self._active.get(grant.run, 0) - 1)
        if not self._active[grant.run]:
            del self._active[grant.run]
        if tokens is not None:
            self._clock_of[grant.run] = self._clock_of.get(grant.run, 0.0) + tokens - grant.charged
            if self._rate is not None:
                self._rate.record_tokens(self._clock(), tokens)
        if seconds is not None:
            self._service_s += 0.2 * (max(seconds, 0.001) - self._service_s)
        self._drop_idle(grant.run)
        self._pump()

    def requeue(self, grant: Grant) -> None:
        """A replica failed before the request started: free its slot without charging the run."""
        self.release(grant, tokens=0.0)

    def retry_after(self) -> float:
        """Seconds after which a refused request likely finds room: the queue drained at the cap's pace."""
        per_slot = self._service_s / max(1, self.max_concurrency)
        return float(max(1, math.ceil(per_slot * (self.queued + 1))))

    def wake(self) -> None:
        """Replicas changed (one became ready, one failed): grant what now fits."""
        self._pump()

    def close(self, reason: str) -> None:
        """The pool stopped: every waiter gets ``reason`` (503), none is left hanging."""
        self._closed = reason
        self.fail_waiting(reason)

    def fail_waiting(self, reason: str) -> None:
        """Fail the queued requests (a replica that could not start, with nothing else ready)."""
        for queue in self._queues.values():
            for waiter in queue:
                if not waiter.future.done():
                    waiter.future.set_exception(GateClosed(reason, retry_after=5.0))
        self._queues.clear()
        self.queued = 0

    def reopen(self) -> None:
        self._closed = None

    def waiting_by_run(self) -> dict[str, int]:
        return {run: len(q) for run, q in self._queues.items()}

    def oldest_wait_s(self) -> float:
        now = self._clock()
        return max((now - q[0].enqueued for q in self._queues.values() if q), default=0.0)

    # --- the pump -----------------------------------------------------------------------------------

    def _can_grant_now(self, exclude: frozenset[int]) -> bool:
        return self.queued == 0 and self.in_flight < self.max_concurrency and self._pick(None, exclude) is not None

    def _pump(self) -> None:
        while self.queued and self.in_flight < self.max_concurrency:
            run = self._next_run()
            if run is None:
                return
            waiter = self._queues[run][0]
            if self._rate is not None:
                delay = self._rate.wait_s(self._clock(), waiter.estimate)
                if delay > 0:
                    self._schedule_wake(delay)
                    return
            # another replica than the one that just failed it, if any is free; else any ready one
            slot = self._pick(run, waiter.exclude) or self._pick(run, frozenset())
            if slot is None:
                return
            self._queues[run].popleft()
            if not self._queues[run]:
                del self._queues[run]
            self.queued -= 1
            if waiter.future.done():  # cancelled while queued
                continue
            slot.in_flight += 1
            self.in_flight += 1
            self._active[run] = self._active.get(run, 0) + 1
            self._clock_of[run] = self._clock_of.get(run, 0.0) + waiter.estimate
            self._affinity[run] = id(slot)
            if self._rate is not None:
                self._rate.record_request(self._clock())
            waiter.future.set_result(slot)

    def _next_run(self) -> str | None:
        best: str | None = None
        best_key: tuple[float, int, float] | None = None
        for run, queue in self._queues.items():
            # fewest tokens served; on a tie, the run with less waiting (a newcomer before a flooder)
            key = (self._clock_of.get(run, 0.0), len(queue), queue[0].enqueued)
            if best_key is None or key < best_key:
                best, best_key = run, key
        return best

    def _pick(self, run: str | None, exclude: frozenset[int]) -> Slot | None:
        """Least in flight among ready replicas with room; the run's last replica when it ties."""
        best: Slot | None = None
        preferred = self._affinity.get(run) if run is not None else None
        for slot in self._slots():
            if not slot.ready or slot.in_flight >= slot.cap or id(slot) in exclude:
                continue
            if best is None or slot.in_flight < best.in_flight or (
                    slot.in_flight == best.in_flight and id(slot) == preferred):
                best = slot
        return best

    def _min_active_clock(self) -> float:
        runs = set(self._queues) | set(self._active)
        return min((self._clock_of.get(r, 0.0) for r in runs), default=0.0)

    def _drop_idle(self, run: str) -> None:
        if run not in self._queues and run not in self._active and len(self._clock_of) > 10_000:
            self._clock_of.pop(run, None)
            self._affinity.pop(run, None)

    def _schedule_wake(self, delay: float) -> None:
        if self._wake is not None and not self._wake.cancelled():
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._wake = None
            self._pump()

        self._wake = loop.call_later(max(0.01, delay), fire)

    def _forget(self, waiter: _Waiter) -> None:
        queue = self._queues.get(waiter.run)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self.queued -= 1
            if not queue:
                del self._queues[waiter.run]
        if not waiter.future.done():
            waiter.future.cancel()

    def _undo(self, run: str, slot: Slot, estimate: float) -> None:
        """Granted, but the caller went away before using it."""
        self.release(Grant(run, slot, estimate, 0.0), tokens=0.0)
