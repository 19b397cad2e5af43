"""The ``@task`` decorator: declares a function's inputs, outputs, resources and policy.

Declarations are checked when the function is decorated, so a typo fails on the line that made it,
not minutes later on a worker. The function is shipped to workers *by value* (cloudpickle), together
with the helpers of its own module, so it runs on machines where that module does not exist.
"""

from __future__ import annotations

import base64
import functools
import inspect
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, overload

import cloudpickle

from lattice.errors import TaskDefinitionError
from lattice.wire import codeship
from lattice.wire.failures import exception_type_name
from lattice.wire.resources import Resources, normalize_resources
from lattice.wire.sandbox import SandboxLevel
from lattice.wire.spec import NAME_PATTERN

SANDBOX_LEVELS = tuple(SandboxLevel.names())
_NAME_RE = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class TaskDefinition:
    """A decorated task function. Calling it runs the function locally, unchanged."""

    fn: Any
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    resources: Resources
    timeout: float | None = None
    retries: int = 0
    priority: int = 0
    sandbox: str | None = None
    network: bool | None = None
    #: the retry policy beyond ``retries``; only what differs from the defaults goes into the spec
    retry_policy: dict[str, Any] = field(default_factory=dict)
    #: model pools the task calls (``params["llm"][alias]``)
    llm: tuple[str, ...] = ()
    _code: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __call__(self, params: dict[str, Any] | None = None, /, **kwargs: Any) -> Any:
        return self.fn({**(params or {}), **kwargs})

    def code_spec(self) -> dict[str, Any]:
        """The function by value (base64 cloudpickle) plus its source, computed once."""
        if not self._code:
            _ship_module_by_value(self.fn)
            try:
                blob = codeship.dumps(self.fn)  # cloudpickle, keeping file names for tracebacks
            except Exception as exc:
                raise TaskDefinitionError(
                    f"task {self.name!r} cannot be serialized to send to workers: {exc}. "
                    "A task function must not capture open files, locks, clients or sockets; "
                    "create them inside the function instead") from exc
            self._code["pickle"] = base64.b64encode(blob).decode()
            self._code["name"] = getattr(self.fn, "__qualname__", self.name)
            try:
                self._code["source"] = inspect.getsource(self.fn)
            except (OSError, TypeError):
                self._code["source"] = ""
        return dict(self._code)

    def catalog_entry(self, description: str | None = None) -> dict[str, Any]:
        """This task as ``POST /api/v1/catalog/tasks`` takes it: ports, docstring, code and policy."""
        doc = description if description is not None else inspect.getdoc(self.fn) or ""
        return {"name": self.name, "description": doc, "inputs": list(self.inputs), "outputs": list(self.outputs),
                "template": {"code": self.code_spec(), **self.policy()}}

    def policy(self) -> dict[str, Any]:
        return {
            "resources": self.resources.model_dump(),
            "timeout": self.timeout,
            "retries": self.retries,
            "priority": self.priority,
            "sandbox": self.sandbox,
            "network": self.network,
            **self.retry_policy,
            **({"llm": list(self.llm)} if self.llm else {}),
        }


def _names(kind: str, value: Any, fn_name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise TaskDefinitionError(
            f"@task on {fn_name!r}: {kind} must be a list of names, got {value!r}"
            + (f"; did you mean {kind}=[{value!r}]?" if isinstance(value, str) else ""))
    for item in value:
        if not isinstance(item, str) or not _NAME_RE.match(item):
            raise TaskDefinitionError(
                f"@task on {fn_name!r}: {kind} entry {item!r} is not a valid name "
                "(letters, digits, '_', '.', '-'; starting with a letter or '_')")
    if len(set(value)) != len(value):
        raise TaskDefinitionError(f"@task on {fn_name!r}: {kind} has duplicates: {list(value)}")
    return tuple(value)


def _resources(fn_name: str, declared: dict[str, Any], extra: dict[str, Any] | None) -> Resources:
    values = {k: v for k, v in declared.items() if v is not None}
    if extra is not None:
        if not isinstance(extra, dict):
            raise TaskDefinitionError(f"@task on {fn_name!r}: resources must be a dict, got {extra!r}")
        try:
            normalized = normalize_resources(extra)
        except ValueError as exc:
            raise TaskDefinitionError(f"@task on {fn_name!r}: {exc}") from exc
        for key, value in normalized.items():
            if key in values and values[key] != value:
                raise TaskDefinitionError(
                    f"@task on {fn_name!r}: {key} is given twice ({values[key]!r} and {value!r})")
            values[key] = value
    shaped = {k: values.pop(k) for k in ("custom", "node_labels") if values.get(k)}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TaskDefinitionError(f"@task on {fn_name!r}: {key} must be a number, got {value!r}")
        if value < 0:
            raise TaskDefinitionError(f"@task on {fn_name!r}: {key} must be >= 0, got {value!r}")
        if key in ("memory", "gpu_memory") and value != int(value):
            raise TaskDefinitionError(f"@task on {fn_name!r}: {key} is in whole MB, got {value!r}")
    try:
        return Resources(**{k: (int(v) if k in ("memory", "gpu_memory") else v) for k, v in values.items()},
                         **shaped)
    except ValueError as exc:
        raise TaskDefinitionError(f"@task on {fn_name!r}: {exc}") from exc


def _number(fn_name: str, what: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise TaskDefinitionError(f"@task on {fn_name!r}: {what} must be a number from {low:g} to {high:g}, "
                                  f"got {value!r}")
    return float(value)


def _retry_policy(fn_name: str, retry_delay: Any, backoff: Any, max_delay: Any, jitter: Any,
                  non_retryable: Any) -> dict[str, Any]:
    """Checked retry settings, as the spec's fields; left out where they are the defaults, so a task
    that does not use them validates on a head that does not know them."""
    policy: dict[str, Any] = {}
    delay = _number(fn_name, "retry_delay (seconds)", retry_delay, 0, 86_400)
    if delay:
        policy["retry_delay"] = delay
    factor = _number(fn_name, "backoff", backoff, 1, 100)
    if factor != 2.0:
        policy["backoff"] = factor
    if max_delay is not None:
        cap = _number(fn_name, "max_delay (seconds)", max_delay, 0, 86_400)
        if cap <= 0 or cap < delay:
            raise TaskDefinitionError(f"@task on {fn_name!r}: max_delay must be > 0 and >= retry_delay "
                                      f"({delay:g}), got {max_delay!r}")
        policy["max_delay"] = cap
    fraction = _number(fn_name, "jitter (a fraction of each delay)", jitter, 0, 1)
    if fraction:
        policy["jitter"] = fraction
    if non_retryable is not None:
        if isinstance(non_retryable, type) or not isinstance(non_retryable, list | tuple):
            raise TaskDefinitionError(f"@task on {fn_name!r}: non_retryable must be a list of exception types, "
                                      f"got {non_retryable!r}")
        names = []
        for item in non_retryable:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TaskDefinitionError(f"@task on {fn_name!r}: non_retryable entry {item!r} is not an "
                                          "exception type; pass the class itself, e.g. non_retryable=[KeyError]")
            names.append(exception_type_name(item))
        if names:
            policy["non_retryable"] = names
    return policy


@overload
def task(fn: Any, /) -> TaskDefinition: ...
@overload
def task(
    fn: None = None, /, *, inputs: list[str] | None = None, outputs: list[str] | None = None,
    cpu: float | None = None, gpu: float | None = None, memory: int | None = None,
    gpu_memory: int | None = None, timeout: float | None = None, retries: int = 0, priority: int = 0,
    sandbox: str | None = None, network: bool | None = None, resources: dict[str, Any] | None = None,
    name: str | None = None, node_labels: dict[str, str] | None = None, retry_delay: float = 0.0,
    backoff: float = 2.0, max_delay: float | None = None, jitter: float = 0.0,
    non_retryable: list[type[BaseException]] | None = None, llm: str | list[str] | tuple[str, ...] | None = None,
) -> Any: ...


def task(
    fn: Any = None,
    /,
    *,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    cpu: float | None = None,
    gpu: float | None = None,
    memory: int | None = None,
    gpu_memory: int | None = None,
    timeout: float | None = None,
    retries: int = 0,
    priority: int = 0,
    sandbox: str | None = None,
    network: bool | None = None,
    resources: dict[str, Any] | None = None,
    name: str | None = None,
    node_labels: dict[str, str] | None = None,
    retry_delay: float = 0.0,
    backoff: float = 2.0,
    max_delay: float | None = None,
    jitter: float = 0.0,
    non_retryable: list[type[BaseException]] | None = None,
    llm: str | list[str] | tuple[str, ...] | None = None,
) -> Any:
    """Declare a task. ``cpu=0`` marks it I/O-bound (it holds no core); ``memory``/``gpu_memory`` in MB.

    ``resources={"cpu":.., "gpu":.., "cpu_mem":.., "gpu_mem":..}`` is accepted as well; any other name in it
    is a custom resource a worker offers (``lattice start --worker --resources '{"my_res": 2}'``).
    ``node_labels={"zone": "a"}``: run only on nodes with these labels (``--labels zone=a``). ``llm="alias"`` (or
    a list) names the model pools it calls: it gets ``params["llm"][alias] = {"base_url", "api_key", "model"}``
    and, for the first, ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` in its environment (see docs/llm.md).

    Retries: up to ``retries`` more attempts after a failure, the n-th after
    ``min(retry_delay * backoff ** (n - 1), max_delay)`` seconds, less up to ``jitter`` (a fraction) of it.
    ``non_retryable=[ExcType, ...]`` (and ``raise lattice.NonRetryable(...)`` inside the task) fail it
    without a retry.
    """

    def decorate(func: Any) -> TaskDefinition:
        if isinstance(func, TaskDefinition):
            func = func.fn
        if not callable(func):
            raise TaskDefinitionError(f"@task decorates a function, got {func!r}")
        fn_name = name or getattr(func, "__name__", "task")
        if not _NAME_RE.match(fn_name):
            fn_name = re.sub(r"[^A-Za-z0-9_.\-]", "_", fn_name).lstrip(".-") or "task"
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or timeout <= 0):
            raise TaskDefinitionError(f"@task on {fn_name!r}: timeout must be a positive number of seconds")
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise TaskDefinitionError(f"@task on {fn_name!r}: retries must be an integer from 0 to 100")
        if isinstance(priority, bool) or not isinstance(priority, int) or not -1000 <= priority <= 1000:
            raise TaskDefinitionError(f"@task on {fn_name!r}: priority must be an integer from -1000 to 1000")
        retry_policy = _retry_policy(fn_name, retry_delay, backoff, max_delay, jitter, non_retryable)
        level = str(sandbox) if sandbox is not None else None
        if level is not None and level not in SANDBOX_LEVELS:
            raise TaskDefinitionError(
                f"@task on {fn_name!r}: sandbox must be one of {list(SANDBOX_LEVELS)}, got {sandbox!r}")
        if node_labels is not None and (not isinstance(node_labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in node_labels.items())):
            raise TaskDefinitionError(f"@task on {fn_name!r}: node_labels must be a dict of str to str, "
                                      f"got {node_labels!r}")
        extra = {**(resources or {}), **({"node_labels": node_labels} if node_labels else {})}
        definition = TaskDefinition(
            fn=func,
            name=fn_name,
            inputs=_names("inputs", inputs, fn_name),
            outputs=_names("outputs", outputs, fn_name),
            resources=_resources(fn_name, {"cpu": cpu, "gpu": gpu, "memory": memory,
                                           "gpu_memory": gpu_memory}, extra if extra else resources),
            timeout=float(timeout) if timeout is not None else None,
            retries=retries,
            priority=priority,
            sandbox=level,
            network=network,
            retry_policy=retry_policy,
            llm=(llm,) if isinstance(llm, str) else tuple(llm or ()),
        )
        for attr in functools.WRAPPER_ASSIGNMENTS:
            if hasattr(func, attr):
                object.__setattr__(definition, attr, getattr(func, attr))
        object.__setattr__(definition, "__wrapped__", func)
        return definition

    if fn is not None:
        return decorate(fn)
    return decorate


# --- shipping code by value ---------------------------------------------------------------------

_INSTALLED_ROOTS = tuple(
    str(Path(p).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (p := sysconfig.get_paths().get(key))
)


def _is_installed(module: ModuleType) -> bool:
    path = getattr(module, "__file__", None)
    if path is None:
        return True  # builtin or namespace module: importable everywhere Python is
    resolved = str(Path(path).resolve())
    return resolved.startswith(_INSTALLED_ROOTS) or "site-packages" in resolved or "dist-packages" in resolved


def _ship_module_by_value(fn: Any) -> None:
    """Make cloudpickle copy the code a task needs that workers may not have: not installed modules.

    Functions in ``__main__`` and notebooks are shipped by value already, but what they call is pickled
    *by reference*: a helper imported from a module next to the script, or a task defined in a test
    module, would fail on a worker that cannot import it. So the function's own package, and every not
    installed package its code refers to (followed through the functions and classes found there), is
    registered to travel by value. Installed packages (site-packages, the standard library) and Lattice
    itself travel by reference: they must be installed on workers.
    """
    seen: set[int] = set()
    _register_reachable(fn, seen, depth=0)


_MAX_DEPTH = 4


def _register_reachable(obj: Any, seen: set[int], depth: int) -> None:
    if id(obj) in seen or depth > _MAX_DEPTH:
        return
    seen.add(id(obj))
    fn = getattr(obj, "__wrapped__", obj)
    if isinstance(fn, functools.partial):
        for part in (fn.func, *fn.args, *fn.keywords.values()):
            _register_reachable(part, seen, depth + 1)
        return
    module_name = getattr(fn, "__module__", None)
    if isinstance(fn, ModuleType):
        module_name = fn.__name__
    if module_name:
        _register_module(module_name)
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    globals_ = getattr(fn, "__globals__", {})
    referenced = [globals_.get(name) for name in _code_names(code)]
    referenced += [_cell_contents(cell) for cell in getattr(fn, "__closure__", None) or ()]
    for value in referenced:
        if value is None or isinstance(value, int | float | str | bytes | bool):
            continue
        if isinstance(value, ModuleType) or inspect.isfunction(value) or inspect.isclass(value) \
                or isinstance(value, functools.partial) or isinstance(value, TaskDefinition):
            target = value.fn if isinstance(value, TaskDefinition) else value
            _register_reachable(target, seen, depth + 1)


def _cell_contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def _code_names(code: Any) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


def _register_module(module_name: str) -> None:
    if module_name == "__main__":
        return
    top = module_name.split(".", 1)[0]
    if top == "lattice" or top in sys.builtin_module_names:
        return
    module = sys.modules.get(top)
    if module is None or _is_installed(sys.modules.get(module_name, module)):
        return
    try:
        cloudpickle.register_pickle_by_value(module)
    except ValueError:
        pass
