"""The restricted decoder: plain data comes back, a pickle that would run code is refused before it runs.

Each malicious payload writes a marker file when unpickled normally (checked first, so the payload is
known to be live); through the restricted decoder it must raise, name the global, and leave no marker.
"""

from __future__ import annotations

import argparse
import builtins
import collections
import datetime
import decimal
import fractions
import os
import pathlib
import pickle
import subprocess
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest

from lattice.wire.restricted_pickle import PickleTrust, UntrustedPickleError, restricted_loads, trusted_keys


class Reducer:
    """Pickles as ``target(*args)``: what an attacker writes into a pickle."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.target, self.args = target, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.target, self.args


SAFE_VALUES: dict[str, Any] = {
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "datetime": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    "date": datetime.date(2024, 1, 2),
    "time": datetime.time(3, 4),
    "timedelta": datetime.timedelta(days=1, seconds=3),
    "decimal": decimal.Decimal("1.25"),
    "fraction": fractions.Fraction(1, 3),
    "deque": collections.deque([1, 2], maxlen=5),
    "ordered": collections.OrderedDict(b=1, a=2),
    "counter": collections.Counter("abracadabra"),
    "defaultdict": collections.defaultdict(list, {"k": [1]}),
    "uuid": uuid.UUID("12345678123456781234567812345678"),
    "path": pathlib.PurePosixPath("/data/x"),
    "complex": 1 + 2j,
    "bytes": b"\x00\xff",
    "bytearray": bytearray(b"ab"),
    "range": range(1, 10, 2),
    "slice": slice(1, None, 2),
    "tuple": (1, "two", 3.0, None, True),
    "nested": {"a": [{1, 2}, (datetime.date(2020, 1, 1), decimal.Decimal("3"))], "b": {"c": collections.deque()}},
}


@pytest.mark.parametrize("name", sorted(SAFE_VALUES))
def test_safe_values_round_trip(name: str) -> None:
    value = SAFE_VALUES[name]
    for data in (cloudpickle.dumps(value), pickle.dumps(value, protocol=4), pickle.dumps(value, protocol=5)):
        loaded = restricted_loads(data)
        assert loaded == value and type(loaded) is type(value)


def test_numpy_arrays_and_scalars_round_trip() -> None:
    for value in (np.arange(6.0).reshape(2, 3), np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
                  np.array([1, "a", None], dtype=object), np.array([True, False])):
        loaded = restricted_loads(cloudpickle.dumps(value))
        assert loaded.dtype == value.dtype and loaded.tolist() == value.tolist()
    assert restricted_loads(cloudpickle.dumps(np.float32(1.5))) == np.float32(1.5)
    assert restricted_loads(cloudpickle.dumps(np.int64(7))) == 7


def test_builtin_exceptions_round_trip() -> None:
    for exc in (ValueError("bad", 1), KeyError("k"), OSError(2, "no such file"), StopIteration(3),
                ExceptionGroup("many", [ValueError("a"), TypeError("b")])):
        loaded = restricted_loads(cloudpickle.dumps(exc))
        assert type(loaded) is type(exc) and loaded.args[0] == exc.args[0]
    assert restricted_loads(cloudpickle.dumps(OSError(2, "no such file"))).errno == 2


def _malicious(marker: Path) -> dict[str, tuple[Any, str]]:
    """Payloads that each create ``marker`` when unpickled for real, with the global they must be refused at."""
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": (Reducer(os.system, f"touch {marker}"), f"{os.system.__module__}.system"),
        "builtins.eval": (Reducer(builtins.eval, code), "builtins.eval"),
        "builtins.exec": (Reducer(builtins.exec, code), "builtins.exec"),
        "open": (Reducer(open, str(marker), "w"), f"{open.__module__}.open"),
        "subprocess.Popen": (Reducer(subprocess.Popen, ["touch", str(marker)]), "subprocess.Popen"),
    }


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "builtins.exec", "open", "subprocess.Popen"])
def test_malicious_reduce_is_refused_and_not_executed(payload: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    obj, refused = _malicious(marker)[payload]
    data = cloudpickle.dumps(obj)
    live = pickle.loads(data)  # the payload is real: unrestricted unpickling runs it
    if isinstance(live, subprocess.Popen):
        live.wait(10)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UntrustedPickleError) as info:
        restricted_loads(data)
    assert info.value.global_name == refused
    assert refused in str(info.value)
    assert not marker.exists()


def _stack_global(module: str, name: str) -> bytes:
    """A protocol-4 pickle that only looks up ``module.name`` (STACK_GLOBAL)."""
    def short(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode()
    return b"\x80\x04" + short(module) + short(name) + b"\x93."


def test_getattr_chains_and_dotted_names_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # getattr(__import__("os"), "system")("touch marker"), as protocol-0 opcodes
    chain = (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(Vtouch " + str(marker).encode()
             + b"\ntR.")
    with pytest.raises(UntrustedPickleError) as info:
        restricted_loads(chain)
    assert info.value.global_name == "builtins.getattr"
    # an allowed type does not lend its attributes: "object.__subclasses__" is not "object"
    with pytest.raises(UntrustedPickleError) as info:
        restricted_loads(b"cbuiltins\nobject.__subclasses__\n)R.")
    assert info.value.global_name == "builtins.object.__subclasses__"
    with pytest.raises(UntrustedPickleError, match=r"datetime\.datetime\.__reduce_ex__"):
        restricted_loads(_stack_global("datetime", "datetime.__reduce_ex__"))
    assert not marker.exists()


def test_cloudpickle_by_value_functions_and_classes_are_refused() -> None:
    def make_class() -> type:
        class Local:
            value = 1
        return Local

    with pytest.raises(UntrustedPickleError, match="_make_function") as info:
        restricted_loads(cloudpickle.dumps(lambda: 1))
    assert info.value.global_name.startswith("cloudpickle.")
    with pytest.raises(UntrustedPickleError) as info:
        restricted_loads(cloudpickle.dumps(make_class()()))
    assert info.value.global_name.startswith("cloudpickle.")
    with pytest.raises(UntrustedPickleError, match=r"builtins\.print"):
        restricted_loads(cloudpickle.dumps(print))


def test_persistent_ids_are_refused() -> None:
    with pytest.raises(UntrustedPickleError, match="persistent id"):
        restricted_loads(b"\x80\x02X\x01\x00\x00\x00xQ.")


def test_unknown_types_are_refused_until_trusted_by_class_or_name() -> None:
    data = cloudpickle.dumps(argparse.Namespace(a=1, b=[2]))
    with pytest.raises(UntrustedPickleError) as info:
        restricted_loads(data)
    assert info.value.global_name == "argparse.Namespace"
    assert restricted_loads(data, [argparse.Namespace]) == argparse.Namespace(a=1, b=[2])
    assert restricted_loads(data, ["argparse.Namespace"]) == argparse.Namespace(a=1, b=[2])
    assert restricted_loads(data, [("argparse", "Namespace")]) == argparse.Namespace(a=1, b=[2])
    nested = cloudpickle.dumps({"ns": [argparse.Namespace(a=1)], "when": datetime.date(2020, 1, 1)})
    assert restricted_loads(nested, [argparse.Namespace])["ns"][0].a == 1


def test_a_trusted_name_that_is_not_a_type_stays_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = cloudpickle.dumps(Reducer(os.system, f"touch {marker}"))
    with pytest.raises(UntrustedPickleError):
        restricted_loads(data, [f"{os.system.__module__}.system"])
    assert not marker.exists()


def test_trusted_keys_rejects_what_is_not_a_type_or_a_dotted_name() -> None:
    assert trusted_keys([argparse.Namespace, "a.b.C"]) == {("argparse", "Namespace"), ("a.b", "C")}
    for bad in ("Namespace", 3, len):
        with pytest.raises(TypeError):
            trusted_keys([bad])


def test_pickle_trust_overrides_and_extends(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = cloudpickle.dumps(Reducer(open, str(marker), "w"))
    base = PickleTrust.of([argparse.Namespace])
    assert base.trust_all is False and ("argparse", "Namespace") in base.types
    assert base.but() is base and base.but(None) is base
    with pytest.raises(UntrustedPickleError):
        base.loads(data)
    assert not marker.exists()
    trusting = base.but(trust_outputs=True)
    assert trusting.trust_all and trusting.types == base.types
    trusting.loads(data).close()  # the opt-in is real: the pickle ran
    assert marker.exists()
    assert PickleTrust.of(trust_outputs=True).but(trust_outputs=False).trust_all is False
    wider = base.but(trusted_types=["collections.ChainMap"])
    assert wider.types == base.types | {("collections", "ChainMap")}
    assert restricted_loads(cloudpickle.dumps(collections.ChainMap({"a": 1})), wider.types) is not None
