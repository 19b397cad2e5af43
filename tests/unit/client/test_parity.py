"""The async client and workflow have every call of the sync ones, with the same parameters.

The two clients share their endpoints and plans, but each still spells out its public methods (one
blocks, the other awaits), so nothing but this test stops one of them from gaining a call or a
parameter the other lacks: the drift a review found before the core existed (the async client had
no ``list_runs``, ``get_events``, ``resources`` or progress bar).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from lattice import AsyncLatticeClient, LatticeClient
from lattice.client import AsyncLatticeWorkflow, LatticeWorkflow

#: sync name -> async name, where Python's protocols name them differently
RENAMED = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
#: no I/O, so a plain method on both sides
NO_IO = {"__init__", "create_workflow", "add_task", "to_spec", "export"}
_DUNDERS = ("__init__", "__enter__", "__exit__", "__aenter__", "__aexit__")


def public_methods(cls: type) -> dict[str, Any]:
    """The methods a user calls: public names, the constructor and the context-manager protocol."""
    methods = {}
    for name in dir(cls):
        if name.startswith("_") and name not in _DUNDERS:
            continue
        value = inspect.getattr_static(cls, name)
        if name in _DUNDERS and not any(name in vars(base) for base in cls.__mro__[:-1]):
            continue  # object's own, not the class's
        if inspect.isfunction(value):
            methods[name] = value
    return methods


def parameters(fn: Any) -> list[tuple[str, Any, Any, str]]:
    """Name, kind, default and annotation of each parameter, in order (``self`` included).

    An async type stands for its sync twin (``AsyncLatticeClient`` for ``LatticeClient``).
    """
    return [(p.name, p.kind, p.default, str(p.annotation).replace("Async", ""))
            for p in inspect.signature(fn).parameters.values()]


def is_async(fn: Any) -> bool:
    annotation = str(inspect.signature(fn).return_annotation)
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) or annotation.startswith("AsyncIterator")


def drift(sync_cls: type, async_cls: type) -> list[str]:
    """Every difference between the two classes' public calls, as readable lines (empty: in step)."""
    sync, aio = public_methods(sync_cls), public_methods(async_cls)
    problems = []
    expected = {RENAMED.get(name, name): name for name in sync}
    for name in sorted(set(aio) - set(expected)):
        problems.append(f"{async_cls.__name__}.{name} has no sync counterpart in {sync_cls.__name__}")
    for async_name, name in sorted(expected.items()):
        if async_name not in aio:
            problems.append(f"{async_cls.__name__} lacks {async_name} (sync: {sync_cls.__name__}.{name})")
            continue
        if parameters(sync[name]) != parameters(aio[async_name]):
            problems.append(f"{name}: {inspect.signature(sync[name])} (sync) != "
                            f"{inspect.signature(aio[async_name])} (async)")
        if name not in NO_IO and not is_async(aio[async_name]):
            problems.append(f"{async_cls.__name__}.{async_name} does I/O but is not awaitable or async-iterable")
    return problems


@pytest.mark.parametrize(("sync_cls", "async_cls"), [(LatticeClient, AsyncLatticeClient),
                                                     (LatticeWorkflow, AsyncLatticeWorkflow)])
def test_async_has_every_sync_call_with_the_same_parameters(sync_cls: type, async_cls: type) -> None:
    assert drift(sync_cls, async_cls) == []


def test_what_the_async_client_lacked_is_there() -> None:
    for name in ("list_runs", "get_events", "resources"):
        assert inspect.iscoroutinefunction(getattr(AsyncLatticeClient, name))
    for fn in (AsyncLatticeClient, AsyncLatticeClient.wait, AsyncLatticeClient.get_results,
               AsyncLatticeWorkflow.get_results):
        assert "progress" in inspect.signature(fn).parameters


def test_drift_is_reported() -> None:
    """The comparison itself: a missing call, another parameter and a blocking async call all show."""

    class Sync:
        def close(self) -> None: ...
        def get(self, run_id: str, after: int = 0) -> None: ...
        def gone(self) -> None: ...

    class Async:
        async def aclose(self) -> None: ...
        async def get(self, run_id: str, after: int = 1) -> None: ...
        def extra(self) -> None: ...

    class Blocking:
        async def aclose(self) -> None: ...
        def get(self, run_id: str, after: int = 0) -> None: ...
        async def gone(self) -> None: ...

    found = drift(Sync, Async)
    assert any("lacks gone" in line for line in found)
    assert any(line.startswith("get:") for line in found)
    assert any("extra has no sync counterpart" in line for line in found)
    assert drift(Sync, Blocking) == ["Blocking.get does I/O but is not awaitable or async-iterable"]
