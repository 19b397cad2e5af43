"""What the sync and async clients share, and do without I/O (httpx's ``BaseClient``).

The layers, each written once:

* :mod:`lattice.client.endpoints` — every endpoint as a :class:`~lattice.client.endpoints.Call`;
* :mod:`lattice.client.decoding` — answers into values, under the caller's trust;
* here — where the head is and which token it takes (:class:`ClientConfig`), error answers into the
  typed errors of :mod:`lattice.errors`, and :class:`BaseClient`: the configuration, trust, retry
  policy (:mod:`lattice.client.retry`) and progress setting both clients hold, plus the
  multi-request logic (waiting on a run, following its event stream) as plans and cursors that do
  no I/O themselves;
* :mod:`lattice.client.client` and :mod:`lattice.client.aio` — only the I/O: ``httpx.Client`` or
  ``httpx.AsyncClient``, blocking or awaiting, a sync or an async WebSocket.

The decoding helpers are re-exported here, where they lived before :mod:`lattice.client.decoding`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lattice.client import endpoints
from lattice.client.compat import version_headers
from lattice.client.decoding import TaskResult, decode_outputs, decode_task_value, decode_wire_value, results_or_raise
from lattice.client.endpoints import Plan
from lattice.client.finished import FinishedRuns
from lattice.client.retry import DEFAULT_UNAVAILABLE_TIMEOUT, RETRY_STATUSES, RetryPolicy
from lattice.errors import (
    APIError,
    AuthenticationError,
    HeadUnavailableError,
    LatticeError,
    NotFoundError,
    WaitTimeout,
)
from lattice.utils.home import default_home
from lattice.utils.tokens import read_token
from lattice.wire.http import MAX_BATCH_RESULTS
from lattice.wire.restricted_pickle import PickleTrust

if TYPE_CHECKING:
    from lattice.client.progress import RunProgress

__all__ = [
    "BaseClient", "ClientConfig", "EventCursor", "TaskResult", "api_error", "connection_error", "decode_outputs",
    "decode_task_value", "decode_wire_value", "discover_token", "discover_url", "results_or_raise",
    "stream_close_error",
]

DEFAULT_URL = "http://localhost:8000"
#: the longest a results request asks the head to hold it (a long poll); reads allow this much more
RESULT_POLL_S = 30.0
#: how often a waiting client asks while it shows a progress bar (the bar needs the task counts)
PROGRESS_POLL_S = 1.0
#: connections in a row that the head accepted and closed without sending anything before a stream gives up
MAX_EMPTY_CONNECTIONS = 20
#: WebSocket close codes: the stream is complete (the head's replay of a finished run ends with it)
CLOSE_COMPLETE = 1000


# --- where the head is, and its token ----------------------------------------------------------------

def discover_url(url: str | None) -> str:
    """An explicit URL, else ``$LATTICE_URL``, else the local head's ``head.json``, else localhost:8000."""
    if url:
        return url.rstrip("/")
    if os.environ.get("LATTICE_URL"):
        return os.environ["LATTICE_URL"].rstrip("/")
    try:
        info = json.loads((default_home() / "head.json").read_text())
        return str(info["url"]).rstrip("/")
    except (OSError, ValueError, KeyError):
        return DEFAULT_URL


def discover_token(token: str | None, data_dir: str | Path | None = None) -> str | None:
    """An explicit token, else ``$LATTICE_TOKEN``, else the token file of the local head's data dir."""
    if token:
        return token
    if os.environ.get("LATTICE_TOKEN"):
        return os.environ["LATTICE_TOKEN"]
    home = Path(data_dir).expanduser() if data_dir else default_home()
    return read_token(home / "token")


@dataclass(frozen=True)
class ClientConfig:
    """A head's URL and token, and the timeout of its requests: all a sender needs besides a socket.

    Build it with :meth:`discover` for a user's client (the URL and token may come from the
    environment or the local data dir); the constructor takes the values as they are, for code that
    was handed them (a task on a worker must not pick up that machine's own token).
    """

    url: str
    token: str | None
    timeout: float

    @classmethod
    def discover(cls, url: str | None, token: str | None, timeout: float,
                 data_dir: str | Path | None = None) -> ClientConfig:
        return cls(discover_url(url), discover_token(token, data_dir), timeout)

    @property
    def headers(self) -> dict[str, str]:
        headers = version_headers()
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def ws_url(self, path: str) -> str:
        base = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return base + path


# --- error answers into typed errors ----------------------------------------------------------------

def api_error(status: int, text: str, reason: str = "") -> APIError:
    """The typed error for an error answer: the head's JSON error body, or the raw text of anything else."""
    try:
        body = json.loads(text)["error"]
        if not isinstance(body, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        body = {"type": "http_error", "message": text[:500] or reason}
    cls = {401: AuthenticationError, 404: NotFoundError}.get(status, APIError)
    return cls(status, body.get("type", "error"), body.get("message", ""), body.get("field"), body.get("hint"))


def connection_error(url: str, exc: BaseException, request_sent: bool = True) -> HeadUnavailableError:
    """A transport failure as the typed error; ``request_sent=False`` when no byte of the request left."""
    return HeadUnavailableError(
        f"cannot reach the Lattice head at {url}: {exc or type(exc).__name__}. Start one with "
        "'lattice start --head', or pass the right URL to the client", request_sent=request_sent)


def stream_close_error(exc: BaseException, run_id: str) -> Exception | None:
    """The typed error for a WebSocket the head refused on purpose; None for a failure worth a reconnect.

    Close codes 4401 (bad token), 4404 (unknown run) and 4422 (a bad ``after``), and a handshake
    answered with a status that is not "unavailable" (a proxy's 403, say).
    """
    received = getattr(exc, "rcvd", None)
    code, reason = getattr(received, "code", None), getattr(received, "reason", "")
    if code == 4401:
        return AuthenticationError(401, "unauthorized", "invalid or missing token", "token",
                                   "pass token= or set LATTICE_TOKEN")
    if code == 4404:
        return NotFoundError(404, "not_found", f"run {run_id!r} not found", "run_id")
    if code == 4422:
        return APIError(422, "validation_error", reason or "invalid stream parameter", "after",
                        "after is a sequence number: 0 (the start) or the seq of the last event seen")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and 400 <= status < 600 and status not in RETRY_STATUSES:
        return api_error(status, bytes(getattr(exc.response, "body", b"") or b"").decode(errors="replace"))  # type: ignore[attr-defined]
    return None


# --- a run's live events ----------------------------------------------------------------------------

class EventCursor:
    """Where one run's event stream stands, so that a reconnect resumes it with nothing lost or repeated.

    The clients own the socket (sync or async ``websockets``); the cursor decides everything else:
    the URL to (re)connect to, which messages are events, when the stream is over, and whether a
    failure is retried (after how long) or raised as a typed error.

    Every reconnect that brought nothing counts: a refused connection and a connection the head
    closed without sending a message alike, with the client's backoff between them, so a head that
    keeps closing at once costs a few tries, not a storm. The stream gives up with
    :class:`~lattice.HeadUnavailableError` when nothing has come for the client's
    ``unavailable_timeout``, or after ``MAX_EMPTY_CONNECTIONS`` empty connections in a row. Any
    message (an event, or the head's keep-alive ping) proves the head is serving and resets both.
    """

    def __init__(self, config: ClientConfig, run_id: str, after: int, policy: RetryPolicy | None = None) -> None:
        self.config, self.run_id = config, run_id
        self.policy = policy or RetryPolicy()
        self.last = after  # the highest sequence number yielded so far
        self.failures = 0  # reconnects in a row that brought nothing
        self.empty = 0  # of those, connections the head accepted and closed without a message
        self.outage_began: float | None = None
        self.finished = False
        self._heard = False  # the current connection brought a message
        self._open = False

    @property
    def url(self) -> str:
        return self.config.ws_url(endpoints.event_stream(self.run_id, self.last))

    @staticmethod
    def retryable() -> tuple[type[BaseException], ...]:
        """What a dropped or refused connection raises (``websockets`` is imported only for streams)."""
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        return ConnectionClosed, InvalidHandshake, OSError, TimeoutError, EOFError

    def opened(self) -> None:
        self._open, self._heard = True, False

    def read(self, message: str | bytes) -> dict[str, Any] | None:
        """The event in ``message``, or None for a keep-alive ping or an event already yielded."""
        self._heard = True
        self.failures = self.empty = 0
        self.outage_began = None
        event: dict[str, Any] = json.loads(message)
        if event.get("type") == "ping":
            return None
        seq = int(event.get("seq", self.last))
        if seq <= self.last:
            return None  # a replay overlapping what was yielded: never twice
        self.last = max(self.last, seq)
        self.finished = event.get("type") == "run_finished"
        return event

    def complete(self, close_code: int | None) -> bool:
        """After the head closed the stream without an error: True when that close means "no more events".

        The head closes with 1000 only when the stream is over: after ``run_finished``, or after the
        replay of a run that had already finished. Anything else (1001 going away, 1012 restart) is a
        drop to reconnect from.
        """
        self._open = False
        if close_code == CLOSE_COMPLETE:
            self.finished = True
        return self.finished

    def retry_after(self, exc: BaseException | None) -> float:
        """Seconds to wait before reconnecting; raises for a refusal, or when the stream must give up."""
        if exc is not None:
            typed = stream_close_error(exc, self.run_id)
            if typed is not None:
                raise typed from None
        was_empty = self._open and not self._heard
        self._open = False
        now = time.monotonic()
        if self.outage_began is None:
            self.outage_began = now
        self.failures += 1
        self.empty += was_empty
        waited = now - self.outage_began
        what = f"the event stream of run {self.run_id} (after seq {self.last})"
        if self.empty >= MAX_EMPTY_CONNECTIONS:
            raise HeadUnavailableError(
                f"the Lattice head at {self.config.url} accepted {what} {self.empty} times in a row and closed it "
                f"without sending anything; last: {exc or 'a normal close'}")
        if waited >= self.policy.unavailable_timeout:
            raise HeadUnavailableError(
                f"the Lattice head at {self.config.url} has not served {what} for {waited:.0f} s "
                f"({self.failures} tries; unavailable_timeout={self.policy.unavailable_timeout:g} s); "
                f"last error: {exc or 'a normal close'}")
        remaining = self.policy.unavailable_timeout - waited
        return min(self.policy.backoff(self.failures), remaining)


@dataclass
class ManyWaited:
    """What a wait on many runs saw: the done runs' results bodies, ids the head does not know (or will not
    show this key), and the runs still going when the wait's timeout ran out."""

    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_found: set[str] = field(default_factory=set)
    pending: list[str] = field(default_factory=list)


# --- the base client ----------------------------------------------------------------------------------

class BaseClient:
    """The configuration, trust and progress setting of a client, and what it does in more than one request.

    ``LatticeClient`` and ``AsyncLatticeClient`` subclass it and add the I/O: ``_send`` (one
    :class:`~lattice.client.endpoints.Call`), ``_drive`` (a :data:`~lattice.client.endpoints.Plan`,
    answering each Call it yields) and ``stream`` (the WebSocket, with an :class:`EventCursor`).
    """

    def __init__(self, url: str | None, token: str | None, timeout: float, progress: bool | None,
                 data_dir: str | Path | None, trusted_types: Iterable[type | str], trust_outputs: bool,
                 unavailable_timeout: float = DEFAULT_UNAVAILABLE_TIMEOUT) -> None:
        self.config = ClientConfig.discover(url, token, timeout, data_dir)
        self.progress = progress
        self.trust = PickleTrust.of(trusted_types, trust_outputs)
        self.retry = RetryPolicy(unavailable_timeout)
        #: results that ``run(wait=True)`` brought back, for the ``get_results`` that follows
        self.finished = FinishedRuns()

    @property
    def _read_timeout(self) -> float:
        """Reads wait longer than the other timeouts: a results request may be held for RESULT_POLL_S."""
        return RESULT_POLL_S + self.config.timeout

    def _progress_bar(self, run_id: str, progress: bool | None) -> RunProgress | None:
        """A bar when asked for (the call's setting, else the client's), by default when stderr is a terminal."""
        show = self.progress if progress is None else progress
        if show is None:
            show = sys.stderr.isatty()
        if not show:
            return None
        from lattice.client.progress import RunProgress

        return RunProgress(run_id)

    def _wait_plan(self, run_id: str, timeout: float | None, progress: bool | None) -> Plan[dict[str, Any]]:
        """Long-poll the run's results until it is done; with a bar, poll each second and feed it the run."""
        deadline = None if timeout is None else time.monotonic() + timeout
        kept = self.finished.take(run_id)
        if kept is not None:  # run(wait=True) brought them back (a big run's first page): no request, or its rest
            return (yield from self._rest_of_results(run_id, kept, deadline))
        bar = self._progress_bar(run_id, progress)
        try:
            while True:
                remaining = RESULT_POLL_S if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(run_id, timeout or 0.0)
                poll = PROGRESS_POLL_S if bar is not None else RESULT_POLL_S
                try:
                    body = yield endpoints.results(run_id, min(remaining, poll), give_up_at=deadline)
                    if bar is not None:
                        bar.update((yield endpoints.get_run(run_id)))
                except (HeadUnavailableError, APIError) as exc:
                    # the retries stopped at this wait's own deadline: the caller asked for a WaitTimeout
                    if deadline is not None and time.monotonic() >= deadline:
                        raise WaitTimeout(run_id, timeout or 0.0) from exc
                    raise
                if body["done"]:
                    return (yield from self._rest_of_results(run_id, body, deadline))
        finally:
            if bar is not None:
                bar.close()

    def _rest_of_results(self, run_id: str, body: dict[str, Any], deadline: float | None
                         ) -> Plan[dict[str, Any]]:
        """A paged results body made whole: the following pages' outputs merged into the first's (the
        user sees one body, as from a head that does not page)."""
        outputs = body.get("outputs")
        after = body.get("next_after")
        while after is not None and outputs is not None:
            page = yield endpoints.results(run_id, 0.0, give_up_at=deadline, after=after)
            outputs.update(page.get("outputs") or {})
            after = page.get("next_after")
        body["next_after"] = None
        return body

    def _wait_many_plan(self, run_ids: list[str], timeout: float | None) -> Plan[ManyWaited]:
        """Long-poll many runs' results, :data:`~lattice.wire.http.MAX_BATCH_RESULTS` ids per request, until
        each is done, unknown, or ``timeout`` ran out; asks again only for the runs still going."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = list(dict.fromkeys(run_ids))
        waited = ManyWaited()
        while pending:
            remaining = RESULT_POLL_S if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                waited.pending = pending
                return waited
            chunk = pending[:MAX_BATCH_RESULTS]
            try:
                answer = yield endpoints.results_many(chunk, min(remaining, RESULT_POLL_S), give_up_at=deadline)
            except (HeadUnavailableError, APIError):
                if deadline is not None and time.monotonic() >= deadline:
                    waited.pending = pending
                    return waited
                raise
            waited.not_found.update(answer["not_found"])
            for body in answer["results"]:
                if body["done"]:
                    waited.bodies[body["run_id"]] = body
            pending = [run_id for run_id in pending if run_id not in waited.bodies and run_id not in waited.not_found]
        for run_id, body in list(waited.bodies.items()):  # a big run's body is its first page: the rest, as one run's
            if body.get("next_after") is not None:
                waited.bodies[run_id] = yield from self._rest_of_results(run_id, body, deadline)
        return waited

    def _many_results(self, run_ids: list[str], waited: ManyWaited, timeout: float | None,
                      trust_outputs: bool | None, return_exceptions: bool) -> list[Any]:
        """Each run's outputs, in the order of ``run_ids``; a run's error raised, or in its place."""
        trust = self.trust.but(trust_outputs)
        out: list[Any] = []
        for run_id in run_ids:
            try:
                if run_id in waited.not_found:
                    raise NotFoundError(404, "not_found", f"run not found: {run_id}", "run_id")
                body = waited.bodies.get(run_id)
                if body is None:
                    raise WaitTimeout(run_id, timeout or 0.0)
                out.append(results_or_raise(body, trust))
            except LatticeError as exc:
                if not return_exceptions:
                    raise
                out.append(exc)
        return out

    def _results(self, body: dict[str, Any], trust_outputs: bool | None) -> dict[str, Any]:
        """A finished run's results body as values (or its typed error), under this call's trust."""
        return results_or_raise(body, self.trust.but(trust_outputs))

    def _cursor(self, run_id: str, after: int) -> EventCursor:
        return EventCursor(self.config, run_id, after, self.retry)
