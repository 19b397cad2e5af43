"""Live events in both clients: a real WebSocket server on loopback, a dropped connection, refusals.

The socket is each client's own (sync or asyncio ``websockets``); what is checked here is what the
shared :class:`~lattice.client.base.EventCursor` decides: pings skipped, a reconnect resuming after
the last sequence number, the end at ``run_finished``, and typed errors for the head's refusals.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.sync.server import ServerConnection, serve

from lattice import AsyncLatticeClient, AuthenticationError, HeadUnavailableError, LatticeClient, NotFoundError
from lattice.client.base import RECONNECT_TRIES, ClientConfig, EventCursor


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


async def collect(kind: str, url: str, after: int = 0) -> list[dict[str, Any]]:
    if kind == "async":
        async with AsyncLatticeClient(url, token="secret") as client:
            return [e async for e in client.stream("r1", after=after)]
    with LatticeClient(url, token="secret", progress=False) as client:
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


def test_the_cursor_gives_up_after_failures_in_a_row_and_resets_on_success() -> None:
    cursor = EventCursor(ClientConfig("http://h:1", None, 1.0), "r1", 0)
    delays = [cursor.retry_after(OSError("refused")) for _ in range(RECONNECT_TRIES)]
    assert delays == [0.2, 0.4, 0.8, 1.6, 2.0]
    cursor.opened()
    assert cursor.retry_after(OSError("refused")) == 0.2
    for _ in range(RECONNECT_TRIES - 1):
        cursor.retry_after(OSError("refused"))
    with pytest.raises(HeadUnavailableError, match="cannot reach the Lattice head at http://h:1"):
        cursor.retry_after(OSError("refused"))


def test_the_cursor_tracks_the_sequence_and_the_end() -> None:
    cursor = EventCursor(ClientConfig("http://h:1", None, 1.0), "r1", 5)
    assert cursor.url == "ws://h:1/api/v1/runs/r1/events/ws?after=5"
    assert cursor.read('{"type": "ping"}') is None
    assert cursor.read(event(7))["seq"] == 7 and not cursor.finished
    assert cursor.read(event(6))["seq"] == 6 and cursor.last == 7  # never moves back
    assert cursor.read(event(8, "run_finished")) is not None and cursor.finished
    assert cursor.url.endswith("after=8")
