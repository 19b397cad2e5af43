"""Fixtures of the client core's tests; the fake heads themselves are in ``fakes.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.client.fakes import LocalHead


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Run the test once with each client: the same body, the same assertions."""
    return request.param


@pytest.fixture
def local_head() -> Iterator[LocalHead]:
    head = LocalHead()
    yield head
    head.close()
