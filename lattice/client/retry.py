"""Riding out a head restart: which failures are retried, how long to wait between tries, and until when.

A head restart (a crash and ``lattice start`` again, a deploy) takes seconds; a client waiting on a run
should not fail because of it. :class:`RetryPolicy` decides, once for both clients: tenacity's
``Retrying`` and ``AsyncRetrying`` take the same strategy objects, so the sync and the async client
retry the same failures with the same backoff and give up at the same moment. The event streams
(``stream``) use the same backoff and deadline through :class:`~lattice.client.base.EventCursor`.

What is retried (:func:`transient`):

* a connection that could not be made (refused, reset before the request went out): always, since the
  head never saw the request;
* a connection lost after the request went out, or a ``502``/``503``/``504`` answer: only for a Call
  that is idempotent (:attr:`~lattice.client.endpoints.Call.retry_safe`), which includes starting a run
  (an idempotency key makes the repeat return the first run);
* a ``503 shutting_down`` answer: always: a head that is stopping answers it before doing anything.

Anything else (a 4xx, a 500, an answer the client cannot read) is raised at once. The deadline,
``unavailable_timeout`` (300 s by default; 0 turns retrying off), counts from the first failure of
an outage, not from the start of the call, so a long wait on a run is not cut short by it; after it
:class:`~lattice.HeadUnavailableError` (also called ``HeadUnavailable``) is raised. A Call's own
``give_up_at`` (a ``get_results(timeout=...)``) ends the retries earlier, with the last error.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, wait_exponential, wait_random

from lattice.client.endpoints import Call
from lattice.errors import APIError, HeadUnavailableError

T = TypeVar("T")

__all__ = ["DEFAULT_UNAVAILABLE_TIMEOUT", "RETRY_STATUSES", "SHUTTING_DOWN", "RetryPolicy", "transient"]

log = logging.getLogger("lattice.client")

#: how long, by default, a client keeps trying a head that does not answer before it raises HeadUnavailable
DEFAULT_UNAVAILABLE_TIMEOUT = 300.0
#: answers that mean "the head (or a proxy before it) cannot serve this now", not "this request is wrong"
RETRY_STATUSES = frozenset({502, 503, 504})
#: the error type of the head's 503 while it shuts down; it did nothing with the request
SHUTTING_DOWN = "shutting_down"


def transient(call: Call[Any], exc: BaseException) -> bool:
    """Whether sending ``call`` again may succeed and cannot do anything twice."""
    if isinstance(exc, HeadUnavailableError):
        return call.retry_safe or not exc.request_sent
    if isinstance(exc, APIError) and exc.status in RETRY_STATUSES:
        return call.retry_safe or exc.type == SHUTTING_DOWN
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How long a client rides out an unavailable head, and its backoff: ``first * 2**n`` capped, plus jitter.

    The jitter spreads the clients of one head apart, so they do not all knock at once when it is back.
    """

    unavailable_timeout: float = DEFAULT_UNAVAILABLE_TIMEOUT
    first_delay: float = 0.2
    max_delay: float = 5.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (self.unavailable_timeout >= 0 and math.isfinite(self.unavailable_timeout)):
            raise ValueError(f"unavailable_timeout must be a finite number of seconds >= 0, "
                             f"got {self.unavailable_timeout!r}")

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type] - the strategies read attempt_number only
        state.attempt_number = max(1, failures)
        return float(self._wait(state))

    @property
    def _wait(self) -> Any:
        return wait_exponential(multiplier=self.first_delay, max=self.max_delay) + wait_random(0, self.jitter)

    def call(self, call: Call[Any], send: Callable[[], T], url: str) -> T:
        """``send()`` (one try of ``call``), retried while :func:`transient` says so and time is left."""
        retrying = Retrying(**_Outage(self, call, url).strategy())
        try:
            return retrying(send)
        finally:
            _release(retrying)

    async def acall(self, call: Call[Any], send: Callable[[], Awaitable[T]], url: str) -> T:
        """The async twin of :meth:`call`: the same strategy, awaited with ``asyncio.sleep``."""
        retrying = AsyncRetrying(**_Outage(self, call, url).strategy())
        try:
            return await retrying(send)
        finally:
            _release(retrying)


def _release(retrying: Retrying | AsyncRetrying) -> None:
    """Empty the pending actions tenacity keeps between tries, so the finished ``Retrying`` is freed at once.

    tenacity keeps them in a thread-local ``IterState``; they are bound methods of the ``Retrying`` itself,
    a reference cycle that, one per request, only the cyclic collector would free (with the strategies,
    this call's ``_Outage`` and the ``Call`` it holds). ``reset`` is what tenacity itself does before
    each try.
    """
    retrying.iter_state.reset()


class _Outage:
    """One call's tries: when its outage began, how long the next sleep is, and when to stop.

    tenacity measures its ``stop_after_delay`` from the start of the call; a results request the head
    held for 30 s before it was killed would then have spent 30 s of the deadline before failing
    once. This counts from the first failure instead, and never sleeps past either deadline.
    """

    def __init__(self, policy: RetryPolicy, call: Call[Any], url: str) -> None:
        self.policy, self.call, self.url = policy, call, url
        self.began: float | None = None
        self.gave_up_for_outage = False

    def strategy(self) -> dict[str, Any]:
        return {"retry": retry_if_exception(lambda exc: transient(self.call, exc)), "wait": self.wait,
                "stop": self.stop, "retry_error_callback": self.give_up, "before_sleep": self.before_sleep}

    def _limits(self) -> tuple[float, float]:
        now = time.monotonic()
        if self.began is None:
            self.began = now
        limit = self.began + self.policy.unavailable_timeout
        if self.call.give_up_at is not None:
            limit = min(limit, self.call.give_up_at)
        return now, limit

    def wait(self, state: RetryCallState) -> float:
        now, limit = self._limits()
        return max(0.0, min(self.policy.backoff(state.attempt_number), limit - now))

    def stop(self, state: RetryCallState) -> bool:
        now, limit = self._limits()
        assert self.began is not None
        self.gave_up_for_outage = now >= self.began + self.policy.unavailable_timeout
        return now >= limit

    def give_up(self, state: RetryCallState) -> Any:
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert exc is not None
        if not self.gave_up_for_outage:
            raise exc  # the caller's own deadline: it turns this into its own error (WaitTimeout)
        assert self.began is not None
        raise HeadUnavailableError(
            f"the Lattice head at {self.url} has been unavailable for {time.monotonic() - self.began:.0f} s "
            f"({self.call.method} {self.call.path}, {state.attempt_number} tries; unavailable_timeout="
            f"{self.policy.unavailable_timeout:g} s); last error: {exc}",
            request_sent=getattr(exc, "request_sent", True)) from exc

    def before_sleep(self, state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        level = logging.WARNING if state.attempt_number == 1 else logging.DEBUG
        log.log(level, "the Lattice head at %s is unavailable (%s); retrying %s %s in %.1f s", self.url,
                state.outcome.exception(), self.call.method, self.call.path, state.next_action.sleep)
