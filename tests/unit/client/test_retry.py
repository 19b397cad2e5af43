"""The retry policy in both clients: what is retried, what is not, the deadline, the keys, the versions.

The head here is a fake that fails on purpose (a refused connection, a connection lost after the
request went out, 502/503/504, ``503 shutting_down``); tests/integration/test_client_resilience.py
does the same against a real head that is killed and restarted.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lattice import APIError, HeadUnavailable, HeadUnavailableError, WaitTimeout
from lattice.client import compat, endpoints
from lattice.client.retry import RetryPolicy, transient
from tests.unit.client.fakes import Both, FakeHead, connect

FAST = RetryPolicy(5.0, first_delay=0.001, max_delay=0.005, jitter=0.001)
DONE = {"run_id": "r1", "state": "succeeded", "done": True,
        "outputs": {"y": {"encoding": "json", "value": 2, "task": "t"}}}
SHUTTING_DOWN = (503, {"error": {"type": "shutting_down", "message": "the head is shutting down"}})


class Flaky:
    """Fails the first ``failures`` requests with ``fail(request)``, then answers as ``head`` does."""

    def __init__(self, head: FakeHead, failures: int, fail: Callable[[httpx.Request], httpx.Response]) -> None:
        self.head, self.left, self.fail = head, failures, fail
        self.tries: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.tries.append(request)
        if self.left > 0:
            self.left -= 1
            return self.fail(request)
        return self.head(request)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def lost(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)


def status(code: int, body: Any = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, json=body or {"error": {"type": "http_error", "message": "x"}})


def client_for(kind: str, head: Callable[[httpx.Request], httpx.Response], policy: RetryPolicy = FAST) -> Both:
    both = Both(kind, FakeHead(), progress=False)
    both.client.retry = policy
    connect(both.client, head)
    return both


@pytest.mark.parametrize("fail", [refused, lost, status(502), status(503), status(504)],
                         ids=["refused", "lost", "502", "503", "504"])
async def test_the_result_wait_rides_out_an_unavailable_head(kind: str, fail: Any) -> None:
    flaky = Flaky(FakeHead({"GET /api/v1/runs/r1/results": DONE}), 3, fail)
    both = client_for(kind, flaky)
    try:
        assert await both.call("get_results", "r1") == {"y": 2}
    finally:
        await both.close()
    assert len(flaky.tries) == 4


async def test_an_error_that_is_not_unavailability_is_raised_at_once(kind: str) -> None:
    flaky = Flaky(FakeHead({"GET /api/v1/runs/r1": {"run_id": "r1"}}), 1, status(500))
    both = client_for(kind, flaky)
    try:
        with pytest.raises(APIError) as info:
            await both.call("get_run", "r1")
        assert info.value.status == 500
    finally:
        await both.close()
    assert len(flaky.tries) == 1


async def test_a_non_idempotent_call_is_resent_only_when_it_never_left(kind: str) -> None:
    """A custom event sent twice would be stored twice: resend it after a refused connection only."""
    head = FakeHead({"POST /api/v1/runs/r1/events": {"seq": 1, "ts": 0.0, "type": "custom", "data": {}}})
    both = client_for(kind, Flaky(head, 2, refused))
    try:
        assert (await both.call("_send", endpoints.post_event("r1", {"k": 1})))["seq"] == 1
    finally:
        await both.close()
    for fail in (lost, status(503)):
        flaky = Flaky(head, 1, fail)
        both = client_for(kind, flaky)
        try:
            with pytest.raises((HeadUnavailableError, APIError)):
                await both.call("_send", endpoints.post_event("r1", {"k": 1}))
        finally:
            await both.close()
        assert len(flaky.tries) == 1
    flaky = Flaky(head, 1, status(*SHUTTING_DOWN))  # the head refused it before doing anything
    both = client_for(kind, flaky)
    try:
        assert (await both.call("_send", endpoints.post_event("r1", {"k": 1})))["seq"] == 1
    finally:
        await both.close()


async def test_a_retried_run_submission_sends_the_same_idempotency_key(kind: str) -> None:
    flaky = Flaky(FakeHead({"POST /api/v1/workflows/w1/runs": {"run_id": "r1"}}), 2, lost)
    both = client_for(kind, flaky)
    try:
        assert await both.call("start_run", "w1") == "r1"
        assert await both.call("start_run", "w1", idempotency_key="mine") == "r1"
    finally:
        await both.close()
    keys = [request.headers["idempotency-key"] for request in flaky.tries]
    assert len(keys) == 4 and keys[0] == keys[1] == keys[2] and len(keys[0]) == 32 and keys[3] == "mine"


async def test_after_the_deadline_head_unavailable_is_raised(kind: str) -> None:
    flaky = Flaky(FakeHead(), 10**9, refused)
    both = client_for(kind, flaky, RetryPolicy(0.3, first_delay=0.01, max_delay=0.05, jitter=0.01))
    try:
        with pytest.raises(HeadUnavailable, match=r"unavailable for 0 s .*unavailable_timeout=0.3 s") as info:
            await both.call("get_results", "r1")
    finally:
        await both.close()
    assert info.value.request_sent is False and isinstance(info.value, ConnectionError)
    assert isinstance(info.value.__cause__, HeadUnavailableError)  # the last try's own error
    assert len(flaky.tries) > 3


async def test_zero_turns_retrying_off(kind: str) -> None:
    flaky = Flaky(FakeHead(), 10**9, refused)
    both = client_for(kind, flaky, RetryPolicy(0.0))
    try:
        with pytest.raises(HeadUnavailableError):
            await both.call("health")
    finally:
        await both.close()
    assert len(flaky.tries) == 1


async def test_a_wait_timeout_during_an_outage_is_a_wait_timeout(kind: str) -> None:
    """The caller's own timeout wins over the (longer) unavailable deadline, and says what it is."""
    flaky = Flaky(FakeHead(), 10**9, status(*SHUTTING_DOWN))
    both = client_for(kind, flaky, RetryPolicy(60.0, first_delay=0.01, max_delay=0.05, jitter=0.01))
    try:
        with pytest.raises(WaitTimeout) as info:
            await both.call("get_results", "r1", timeout=0.3)
    finally:
        await both.close()
    assert isinstance(info.value, TimeoutError) and info.value.run_id == "r1"
    assert isinstance(info.value.__cause__, APIError) and info.value.__cause__.status == 503


def test_a_finished_call_leaves_no_reference_cycle() -> None:
    """One request, one ``Retrying``: freed by reference counting, not left for the cyclic collector
    (LangGraph's ``test_pregel_loop_refcount`` runs with the collector off)."""
    import asyncio
    import gc

    call: endpoints.Call[Any] = endpoints.health()

    async def asend() -> str:
        return "ok"

    def cyclic_garbage_of_ours(send: Callable[[], Any]) -> list[str]:
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            assert send() == "ok"
            gc.collect()
            return [type(obj).__qualname__ for obj in gc.garbage
                    if type(obj).__module__.startswith(("tenacity", "lattice"))]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()

    loop = asyncio.new_event_loop()
    try:
        assert cyclic_garbage_of_ours(lambda: FAST.call(call, lambda: "ok", "http://head")) == []
        assert cyclic_garbage_of_ours(lambda: loop.run_until_complete(FAST.acall(call, asend, "http://head"))) == []
    finally:
        loop.close()


def test_which_failures_are_transient() -> None:
    get, post, keyed = endpoints.get_run("r1"), endpoints.post_event("r1", {}), endpoints.start_run("w1")
    sent, unsent = HeadUnavailableError("lost"), HeadUnavailableError("refused", request_sent=False)
    assert transient(get, sent) and transient(keyed, sent) and not transient(post, sent)
    assert transient(post, unsent)
    for code in (502, 503, 504):
        assert transient(get, APIError(code, "http_error", "x")) and not transient(post, APIError(code, "e", "x"))
    assert transient(post, APIError(503, "shutting_down", "x"))
    assert not transient(get, APIError(500, "internal_error", "x")) and not transient(get, APIError(422, "v", "x"))
    assert not transient(get, KeyError("run_id"))
    assert endpoints.cancel("r1").retry_safe and endpoints.delete_thread("t").retry_safe


def test_the_backoff_grows_to_its_cap_with_jitter() -> None:
    policy = RetryPolicy(300.0, first_delay=0.2, max_delay=5.0, jitter=0.5)
    for failures, low in ((1, 0.2), (2, 0.4), (3, 0.8), (6, 5.0), (30, 5.0)):
        assert low <= policy.backoff(failures) <= low + 0.5
    with pytest.raises(ValueError, match="unavailable_timeout"):
        RetryPolicy(-1.0)


async def test_an_incompatible_head_is_warned_about_once(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "_warned", set())

    def head(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "ok"}, headers={"x-lattice-version": "7.0.0"})

    both = client_for(kind, head)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                await both.call("health")
    finally:
        await both.close()
    found = [w for w in caught if issubclass(w.category, compat.IncompatibleHeadWarning)]
    assert len(found) == 1 and "runs version 7.0.0" in str(found[0].message)


def test_version_compatibility_rule() -> None:
    assert compat.compatible("0.1.0", "0.1.7") and not compat.compatible("0.1.0", "0.2.0")
    assert compat.compatible("1.2.0", "1.9.1") and not compat.compatible("1.2.0", "2.0.0")
    assert compat.compatible("0.1.0", "dev")  # unreadable: not warned about
