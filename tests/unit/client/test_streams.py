"""Live events in both clients: a real WebSocket server on loopback, a dropped connection, refusals.

The socket is each client's own (sync or asyncio ``websockets``); what is checked here is what the
shared :class:`~lattice.client.base.EventCursor` decides: pings skipped, a reconnect resuming after
the last sequence number, the end at ``run_finished`` or at the head's normal close, each event once,
typed errors for the head's refusals, and a bounded, backed-off reconnect when the head keeps
closing the stream without sending anything.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.sync.server import ServerConnection, serve

from lattice import (
    APIError,
    AsyncLatticeClient,
    AuthenticationError,
    HeadUnavailableError,
    LatticeClient,
    NotFoundError,
)
from lattice.client.base import MAX_EMPTY_CONNECTIONS, ClientConfig, EventCursor
from lattice.client.retry import RetryPolicy

#: the backoff of the real policy, shrunk so that a test of many reconnects takes milliseconds
FAST = RetryPolicy(30.0, first_delay=0.001, max_delay=0.004, jitter=0.001)


def event(seq: int, type_: str = "task_log") -> str:
    return json.dumps({"seq": seq, "ts": 0.0, "type": type_, "task": None, "data": {}})


class EventServer:
    """Serves each connection with the next script: ``script(connection, after)``; records each ``after``."""

    def __init__(self, scripts: list[Callable[[ServerConnection, int], None]]) -> None:
        self.scripts, self.afters, self.tokens = iter(scripts), [], []

        def handler(connection: ServerConnection) -> None:
            after = int(parse_qs(urlsplit(connection.request.path).query)["after"][0])
            self.afters.append(after)
            self.tokens.append(connection.request.headers.get("authorization"))
            next(self.scripts)(connection, after)

        self.server = serve(handler, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.socket.getsockname()[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def served() -> Iterator[Callable[..., EventServer]]:
    servers: list[EventServer] = []

    def make(*scripts: Callable[[ServerConnection, int], None]) -> EventServer:
        servers.append(EventServer(list(scripts)))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def drop_after_two(connection: ServerConnection, after: int) -> None:
    connection.send(json.dumps({"type": "ping"}))
    connection.send(event(1))
    connection.send(event(2))
    connection.close(1011, "head restarting")  # dropped mid-run: the client must resume after seq 2


def finish(connection: ServerConnection, after: int) -> None:
    connection.send(event(after + 1, "run_finished"))
    connection.send(event(after + 2))  # after run_finished: never read


async def collect(kind: str, url: str, after: int = 0, policy: RetryPolicy = FAST) -> list[dict[str, Any]]:
    if kind == "async":
        async with AsyncLatticeClient(url, token="secret") as client:
            client.retry = policy
            return [e async for e in client.stream("r1", after=after)]
    with LatticeClient(url, token="secret", progress=False) as client:
        client.retry = policy
        return list(client.stream("r1", after=after))


async def test_a_dropped_stream_resumes_after_the_last_event(kind: str, served: Callable[..., EventServer]) -> None:
    server = served(drop_after_two, finish)
    events = await collect(kind, server.url)
    assert [(e["seq"], e["type"]) for e in events] == [(1, "task_log"), (2, "task_log"), (3, "run_finished")]
    assert server.afters == [0, 2] and server.tokens == ["Bearer secret"] * 2


async def test_a_stream_starts_after_the_given_event(kind: str, served: Callable[..., EventServer]) -> None:
    server = served(finish)
    assert [e["seq"] for e in await collect(kind, server.url, after=41)] == [42]
    assert server.afters == [41]


@pytest.mark.parametrize(("code", "error"), [(4401, AuthenticationError), (4404, NotFoundError)])
async def test_a_refusal_is_raised_not_retried(kind: str, served: Callable[..., EventServer], code: int,
                                               error: type[Exception]) -> None:
    server = served(lambda connection, after: connection.close(code, "refused"))
    with pytest.raises(error):
        await collect(kind, server.url)
    assert server.afters == [0]


def replay_then_close(connection: ServerConnection, after: int) -> None:
    """A finished run's stream as the head sends it: the events after ``after`` (none here), then 1000."""
    connection.close(1000, "run finished")


def overlap(connection: ServerConnection, after: int) -> None:
    connection.send(event(after))  # already yielded: must not come out twice
    connection.send(event(after + 1, "run_finished"))


def slam(connection: ServerConnection, after: int) -> None:
    connection.close(1011, "handler failed")  # accepted, then closed with nothing sent


async def test_a_normal_close_ends_the_stream_of_a_finished_run(kind: str, served: Callable[..., EventServer]) -> None:
    server = served(replay_then_close)
    assert await collect(kind, server.url, after=99) == []
    assert server.afters == [99]


async def test_every_event_comes_out_once_across_a_reconnect(kind: str, served: Callable[..., EventServer]) -> None:
    server = served(drop_after_two, overlap)
    events = await collect(kind, server.url)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert server.afters == [0, 2]


async def test_a_bad_after_is_a_typed_422_not_a_reconnect(kind: str, served: Callable[..., EventServer]) -> None:
    server = served(lambda connection, after: connection.close(4422, "after: must be at most 2**63-1"))
    with pytest.raises(APIError) as info:
        await collect(kind, server.url)
    assert (info.value.status, info.value.field) == (422, "after")
    assert server.afters == [0]


async def test_empty_connections_are_counted_and_the_stream_gives_up(kind: str,
                                                                     served: Callable[..., EventServer]) -> None:
    """The storm of the issue: a head that accepts and closes at once is asked a bounded number of times."""
    server = served(*[slam] * (MAX_EMPTY_CONNECTIONS + 5))
    with pytest.raises(HeadUnavailableError, match=f"{MAX_EMPTY_CONNECTIONS} times in a row"):
        await collect(kind, server.url)
    assert len(server.afters) == MAX_EMPTY_CONNECTIONS


async def test_an_unreachable_head_is_given_up_after_the_deadline(kind: str) -> None:
    from lattice.utils.net import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(HeadUnavailableError, match=r"unavailable_timeout=0\.2 s"):
        await collect(kind, url, policy=RetryPolicy(0.2, first_delay=0.01, max_delay=0.05, jitter=0.01))


def test_the_cursor_backs_off_and_resets_on_any_message() -> None:
    policy = RetryPolicy(300.0, first_delay=0.2, max_delay=5.0, jitter=0.0)
    cursor = EventCursor(ClientConfig("http://h:1", None, 1.0), "r1", 0, policy)
    delays = [cursor.retry_after(OSError("refused")) for _ in range(7)]
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    cursor.opened()
    assert cursor.read('{"type": "ping"}') is None  # the head is serving again: the backoff starts over
    assert cursor.retry_after(OSError("dropped")) == 0.2
    assert cursor.empty == 0  # that connection brought a message: not an empty one
    cursor.opened()
    cursor.retry_after(None)
    assert cursor.empty == 1


def test_the_cursor_gives_up_when_the_outage_passes_the_deadline() -> None:
    cursor = EventCursor(ClientConfig("http://h:1", None, 1.0), "r1", 0, RetryPolicy(0.0))
    with pytest.raises(HeadUnavailableError, match="has not served the event stream of run r1"):
        cursor.retry_after(OSError("refused"))


def test_the_cursor_tracks_the_sequence_and_the_end() -> None:
    cursor = EventCursor(ClientConfig("http://h:1", None, 1.0), "r1", 5)
    assert cursor.url == "ws://h:1/api/v1/runs/r1/events/ws?after=5"
    assert cursor.read('{"type": "ping"}') is None
    assert cursor.read(event(7))["seq"] == 7 and not cursor.finished
    assert cursor.read(event(6)) is None and cursor.last == 7  # never moves back, never twice
    assert cursor.read(event(8, "run_finished")) is not None and cursor.finished
    assert cursor.url.endswith("after=8")
    assert not EventCursor(ClientConfig("http://h:1", None, 1.0), "r1", 0).complete(1012)
    assert EventCursor(ClientConfig("http://h:1", None, 1.0), "r1", 0).complete(1000)
