import pytest

from lattice import TaskDefinitionError, task
from lattice.wire.resources import ResourceClass


def test_declares_inputs_outputs_and_resources():
    @task(inputs=["a"], outputs=["b"], cpu=0.25, memory=512, timeout=3, retries=2, priority=5)
    def f(params):
        """Doc."""
        return {"b": params["a"]}

    assert f.inputs == ("a",) and f.outputs == ("b",)
    assert f.resources.cpu == 0.25 and f.resources.memory == 512
    assert f.timeout == 3.0 and f.retries == 2 and f.priority == 5
    assert f.__name__ == "f" and f.__doc__ == "Doc."
    assert f({"a": 1}) == {"b": 1}  # still callable locally


def test_resources_dict_spellings():
    @task(outputs=["x"], resources={"cpu": 2, "gpu": 1, "cpu_mem": 1024, "gpu_mem": 2048})
    def f(params):
        return {"x": 1}

    assert (f.resources.cpu, f.resources.gpu, f.resources.memory, f.resources.gpu_memory) == (2, 1, 1024, 2048)
    assert f.resources.resource_class is ResourceClass.GPU


def test_bare_decorator_and_defaults():
    @task
    def f(params):
        return None

    assert f.resources.cpu == 1 and f.resources.resource_class is ResourceClass.CPU
    assert task(cpu=0)(lambda p: None).resources.resource_class is ResourceClass.IO


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu": -1}, "cpu must be >= 0"),
        ({"memory": -5}, "memory must be >= 0"),
        ({"memory": 1.5}, "whole MB"),
        ({"cpu": "two"}, "cpu must be a number"),
        ({"resources": {"cpus_typo": 1, "disk": 2}}, "unknown resource"),
        ({"resources": {"cpu": 2}, "cpu": 1}, "given twice"),
        ({"outputs": "result"}, "did you mean outputs=['result']"),
        ({"outputs": ["ok", 3]}, "not a valid name"),
        ({"inputs": ["a", "a"]}, "duplicates"),
        ({"timeout": 0}, "timeout must be a positive"),
        ({"retries": -1}, "retries must be an integer"),
        ({"sandbox": "vm"}, "sandbox must be one of"),
    ],
)
def test_bad_declarations_fail_at_decoration_time(kwargs, message):
    with pytest.raises(TaskDefinitionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        task(**kwargs)(lambda params: None)


def test_code_spec_ships_function_by_value():
    import base64

    import cloudpickle

    @task(inputs=["x"], outputs=["y"])
    def double(params):
        return {"y": params["x"] * 2}

    spec = double.code_spec()
    fn = cloudpickle.loads(base64.b64decode(spec["pickle"]))
    assert fn({"x": 4}) == {"y": 8}
    assert "def double" in spec["source"]
