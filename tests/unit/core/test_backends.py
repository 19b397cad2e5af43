"""Every backend speaks the :class:`~lattice.core.backend.Backend` protocol: the same methods, the same
parameters. Checked on the classes, so no Ray cluster is needed; the Ray backend's behaviour is what the
integration tests run."""

from __future__ import annotations

import inspect

import pytest
from fake_backend import FakeBackend

from lattice.core.backend import Backend
from lattice.executor.dispatch import RayBackend

PROTOCOL_METHODS = ["nodes", "put", "submit", "cancel", "warm_up", "shutdown"]


@pytest.mark.parametrize("implementation", [RayBackend, FakeBackend])
@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_a_backend_has_each_protocol_method_with_its_parameters(implementation: type, method: str) -> None:
    expected = list(inspect.signature(getattr(Backend, method)).parameters)
    assert list(inspect.signature(getattr(implementation, method)).parameters) == expected


def test_the_protocol_lists_every_method() -> None:
    declared = [name for name, value in vars(Backend).items() if inspect.isfunction(value) and not name.startswith("_")]
    assert sorted(declared) == sorted(PROTOCOL_METHODS)
