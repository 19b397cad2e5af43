import cloudpickle
import pytest

from lattice.errors import ErrorKind
from lattice.executor.invoke import invoke
from lattice.wire.encoding import decode_value, encode_value, is_json_native, value_from_wire, value_to_wire


@pytest.mark.parametrize("value", [None, 1, 1.5, "s", True, [1, "a"], {"a": {"b": [None]}}])
def test_json_values_stay_json(value):
    encoding, data = encode_value(value)
    assert encoding == "json"
    assert decode_value(encoding, data) == value


@pytest.mark.parametrize("value", [(1, 2), {1: "int key"}, {1, 2}, b"bytes", float("nan"), complex(1, 2)])
def test_other_values_are_pickled_and_round_trip(value):
    encoding, data = encode_value(value)
    assert encoding == "pickle"
    out = decode_value(encoding, data)
    assert out == value or (out != out and value != value)


def test_wire_round_trip_keeps_types():
    assert value_from_wire(value_to_wire((1, 2))) == (1, 2)
    assert value_to_wire({"a": 1}) == {"encoding": "json", "value": {"a": 1}}
    assert not is_json_native({"a": (1,)})


def test_invoke_checks_outputs():
    ok = invoke(lambda p: {"y": p["x"] + 1, "extra": 0}, {"x": 1}, ["y"])
    assert ok.ok and list(ok.outputs) == ["y"] and decode_value(*ok.outputs["y"]) == 2
    missing = invoke(lambda p: {"z": 1}, {}, ["y"])
    assert missing.error["kind"] == ErrorKind.OUTPUT_MISSING and "'y'" in missing.error["message"]
    wrong = invoke(lambda p: 5, {}, ["y"])
    assert wrong.error["kind"] == ErrorKind.OUTPUT_INVALID
    big = invoke(lambda p: {"y": "x" * 1000}, {}, ["y"], max_output_bytes=100)
    assert big.error["kind"] == ErrorKind.OUTPUT_TOO_LARGE


def test_invoke_captures_exceptions_as_data():
    def boom(params):
        raise KeyError("nope")

    result = invoke(cloudpickle.dumps(boom), {}, [])
    assert result.error["type"] == "KeyError" and "nope" in result.error["message"]
    assert "boom" in result.error["traceback"]
    exits = invoke(lambda p: exit(3), {}, [])
    assert exits.error["type"] == "SystemExit"
