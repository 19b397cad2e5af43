import pytest

from lattice.core.dag import SpecError, build_graph
from lattice.wire.spec import WorkflowSpec


def spec(*tasks):
    return WorkflowSpec.model_validate({"tasks": list(tasks)})


def t(name, inputs=None, outputs=("out",)):
    return {"name": name, "builtin": "echo", "inputs": inputs or {}, "outputs": list(outputs)}


def ref(task, output="out"):
    return {"task": task, "output": output}


def test_diamond_order_and_sinks():
    graph = build_graph(spec(t("a"), t("b", {"x": ref("a")}), t("c", {"x": ref("a")}),
                             t("d", {"l": ref("b"), "r": ref("c")})))
    order = graph.order
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")
    assert graph.sinks == ("d",)
    assert graph.upstream["d"] == {"b", "c"}
    assert graph.critical_path["a"] == 3


def test_independent_tasks_are_all_sinks():
    assert set(build_graph(spec(t("a"), t("b"))).sinks) == {"a", "b"}


def test_cycle_is_named():
    with pytest.raises(SpecError) as err:
        build_graph(spec(t("a", {"x": ref("c")}), t("b", {"x": ref("a")}), t("c", {"x": ref("b")}), t("z")))
    assert "cycle" in err.value.message
    for name in "abc":
        assert name in err.value.message
    assert "z" not in err.value.message.split(":", 1)[1]


def test_self_loop():
    with pytest.raises(SpecError, match="cycle: a -> a"):
        build_graph(spec(t("a", {"x": ref("a")})))


def test_missing_task_and_output():
    with pytest.raises(SpecError) as err:
        build_graph(spec(t("a", {"x": ref("nope")})))
    assert err.value.field == "tasks[0].inputs.x.task"
    with pytest.raises(SpecError) as err:
        build_graph(spec(t("a"), t("b", {"x": ref("a", "missing")})))
    assert err.value.field == "tasks[1].inputs.x.output"


def test_duplicate_names_and_unknown_builtin():
    with pytest.raises(SpecError, match="two tasks"):
        build_graph(spec(t("a"), t("a")))
    with pytest.raises(SpecError, match="unknown builtin"):
        build_graph(spec({"name": "a", "builtin": "nope"}), {"echo"})


def test_input_forms_are_validated():
    with pytest.raises(ValueError, match="reference needs both"):
        spec({"name": "a", "builtin": "echo", "inputs": {"x": {"task": "b"}}})
    with pytest.raises(ValueError, match="exactly one of 'code', 'code_ref' or 'builtin'"):
        spec({"name": "a"})
    ok = spec({"name": "a", "builtin": "echo", "inputs": {"x": {"value": None}, "y": {"encoding": "json", "value": 1}}})
    assert ok.tasks[0].inputs["x"].value is None
