"""Decoding pickles that untrusted code produced, without running that code.

A task above sandbox level ``none`` is not trusted, and neither is anything it returns: a pickle is a
program, and ``pickle.loads`` of a value whose ``__reduce__`` names ``os.system`` runs it. Outside a
sandbox (the client, a level-``none`` worker consuming a sandboxed task's output) such bytes are read
only through :func:`restricted_loads`, whose unpickler resolves a global only when it is a type in an
explicit allow list: plain data types of the standard library, builtin exceptions, numpy arrays, and
the types a caller names (``trusted_types``). Anything else — a function, ``getattr``, a class that
cloudpickle ships by value, an unknown type — raises :class:`UntrustedPickleError` *before* it is
called, naming the global so the error can tell the user what to trust.

Hand-written because the standard library has no restricted unpickler (its docs show this very
``find_class`` override as the recipe); the allow list follows the same reasoning as PyTorch's
``weights_only`` unpickler: only constructors without side effects.
"""

from __future__ import annotations

import builtins
import importlib
import io
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: (module, name) pairs every restricted decoder accepts: constructors of plain values, nothing that
#: calls code chosen by the pickle
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "object"),
        ("builtins", "bool"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "complex"),
        ("builtins", "str"),
        ("builtins", "bytes"),
        ("builtins", "tuple"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "slice"),
        ("builtins", "range"),
        ("copyreg", "_reconstructor"),  # calls base.__new__/__init__ of classes that passed this check
        ("collections", "OrderedDict"),
        ("collections", "deque"),
        ("collections", "Counter"),
        ("collections", "defaultdict"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "datetime"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("uuid", "UUID"),
        ("pathlib", "PurePosixPath"),
        ("pathlib", "PosixPath"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
    }
)

_BUILTIN_EXCEPTIONS = frozenset(
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
)


class UntrustedPickleError(pickle.UnpicklingError):
    """A pickle from untrusted code names a global that is not allowed (``.global_name`` says which)."""

    def __init__(self, global_name: str) -> None:
        self.global_name = global_name
        super().__init__(f"refused to load {global_name!r}: it is not a type this decoder trusts")


def type_key(cls: type) -> tuple[str, str]:
    """How a pickle names ``cls``: its module and qualified name."""
    return cls.__module__, cls.__qualname__


def trusted_keys(types: Iterable[type | str | tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """``(module, name)`` for each trusted type, given as a class, ``"module.Name"`` or such a pair."""
    keys = set()
    for item in types:
        if isinstance(item, tuple) and len(item) == 2 and all(isinstance(part, str) for part in item):
            keys.add(item)
        elif isinstance(item, type):
            keys.add(type_key(item))
        elif isinstance(item, str) and "." in item:
            module, _, name = item.rpartition(".")
            keys.add((module, name))
        else:
            raise TypeError(f"a trusted type is a class or a 'module.Name' string, got {item!r}")
    return frozenset(keys)


def _numpy_dtype_class(module: str, name: str) -> bool:
    # numpy 2 pickles a dtype through its class in numpy.dtypes (Float64DType, ...): inert constructors
    return module == "numpy.dtypes" and name.endswith("DType")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allowed globals; see the module docstring."""

    def __init__(self, file: io.BytesIO, allowed: frozenset[tuple[str, str]]) -> None:
        super().__init__(file)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in SAFE_GLOBALS or _numpy_dtype_class(module, name):
            return _resolve(module, name)
        if module == "builtins" and name in _BUILTIN_EXCEPTIONS:
            return getattr(builtins, name)
        if key in self._allowed:
            found = _resolve(module, name)
            if isinstance(found, type):  # a caller trusts types; a function named by mistake stays refused
                return found
        raise UntrustedPickleError(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise UntrustedPickleError("persistent id")


def _resolve(module: str, name: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def restricted_loads(data: bytes, trusted_types: Iterable[type | str | tuple[str, str]] = ()) -> Any:
    """Unpickle ``data`` allowing only safe types and ``trusted_types``; :class:`UntrustedPickleError` else."""
    return RestrictedUnpickler(io.BytesIO(data), trusted_keys(trusted_types)).load()


TrustedTypes = Iterable[type | str | tuple[str, str]]


@dataclass(frozen=True)
class PickleTrust:
    """How a client decodes pickles that sandboxed tasks wrote: everything, or only safe and named types.

    One value carries a client's setting (``LatticeClient(trusted_types=..., trust_outputs=...)``) to
    every place that decodes, including the :class:`~lattice.RunFailed` it raises, so a per-call
    override cannot be forgotten on one path.
    """

    #: unpickle with cloudpickle, without restriction (the user's explicit opt-in)
    trust_all: bool = False
    #: ``(module, name)`` of the types the restricted decoder accepts beyond :data:`SAFE_GLOBALS`
    types: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, trusted_types: TrustedTypes = (), trust_outputs: bool = False) -> PickleTrust:
        return cls(bool(trust_outputs), trusted_keys(trusted_types))

    def but(self, trust_outputs: bool | None = None, trusted_types: TrustedTypes = ()) -> PickleTrust:
        """This trust with a call's overrides: ``trust_outputs`` when not None, and more trusted types."""
        extra = trusted_keys(trusted_types)
        trust_all = self.trust_all if trust_outputs is None else bool(trust_outputs)
        if trust_all == self.trust_all and extra <= self.types:
            return self
        return PickleTrust(trust_all, self.types | extra)

    def loads(self, data: bytes) -> Any:
        """Unpickle bytes a sandboxed task wrote; :class:`UntrustedPickleError` for a global not trusted."""
        if self.trust_all:
            import cloudpickle

            return cloudpickle.loads(data)
        return RestrictedUnpickler(io.BytesIO(data), self.types).load()


__all__ = ["SAFE_GLOBALS", "PickleTrust", "RestrictedUnpickler", "TrustedTypes", "UntrustedPickleError",
           "restricted_loads", "trusted_keys"]
