"""Checks a workflow spec as a graph: references resolve, no cycles; and derives its order and sinks.

Every problem raises :class:`SpecError` naming the field, so the API can answer 422 with the path.
"""

from __future__ import annotations

from dataclasses import dataclass

from lattice.wire.spec import WorkflowSpec


class SpecError(ValueError):
    def __init__(self, message: str, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint


@dataclass(frozen=True)
class Graph:
    """The validated shape of a workflow: upstreams/downstreams per task, a topological order, sinks."""

    order: tuple[str, ...]
    upstream: dict[str, frozenset[str]]
    downstream: dict[str, frozenset[str]]
    sinks: tuple[str, ...]
    critical_path: dict[str, int]


def build_graph(spec: WorkflowSpec, builtins: set[str] | None = None) -> Graph:
    names: dict[str, int] = {}
    for index, task in enumerate(spec.tasks):
        if task.name in names:
            raise SpecError(f"two tasks are named {task.name!r}", f"tasks[{index}].name",
                            "give every task a unique name")
        names[task.name] = index
        if builtins is not None and task.builtin is not None and task.builtin not in builtins:
            raise SpecError(f"unknown builtin {task.builtin!r}", f"tasks[{index}].builtin",
                            f"one of {sorted(builtins)}")

    outputs = {task.name: set(task.outputs) for task in spec.tasks}
    upstream: dict[str, set[str]] = {task.name: set() for task in spec.tasks}
    downstream: dict[str, set[str]] = {task.name: set() for task in spec.tasks}
    for index, task in enumerate(spec.tasks):
        for input_name, item in task.inputs.items():
            if not item.is_reference:
                continue
            field = f"tasks[{index}].inputs.{input_name}"
            assert item.task is not None
            if item.task not in names:
                raise SpecError(f"task {task.name!r} input {input_name!r} refers to unknown task {item.task!r}",
                                field + ".task", f"known tasks: {sorted(names)[:20]}")
            if item.output not in outputs[item.task]:
                raise SpecError(
                    f"task {task.name!r} input {input_name!r} refers to output {item.output!r} "
                    f"that task {item.task!r} does not declare",
                    field + ".output", f"{item.task!r} declares outputs {sorted(outputs[item.task])}")
            upstream[task.name].add(item.task)
            downstream[item.task].add(task.name)

    order = _topological_order([t.name for t in spec.tasks], upstream, downstream)
    sinks = tuple(name for name in order if not downstream[name])
    critical: dict[str, int] = {}
    for name in reversed(order):
        critical[name] = 1 + max((critical[d] for d in downstream[name]), default=0)
    return Graph(
        order=tuple(order),
        upstream={k: frozenset(v) for k, v in upstream.items()},
        downstream={k: frozenset(v) for k, v in downstream.items()},
        sinks=sinks,
        critical_path=critical,
    )


def _topological_order(names: list[str], upstream: dict[str, set[str]], downstream: dict[str, set[str]]) -> list[str]:
    remaining = {name: len(upstream[name]) for name in names}
    ready = [name for name in names if remaining[name] == 0]
    order: list[str] = []
    while ready:
        name = ready.pop()
        order.append(name)
        for child in sorted(downstream[name]):
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    if len(order) != len(names):
        cycle = _find_cycle({n for n in names if remaining[n] > 0}, upstream)
        raise SpecError(f"the workflow has a cycle: {' -> '.join(cycle)}", "tasks",
                        "a task cannot depend, directly or not, on its own output")
    return order


def _find_cycle(candidates: set[str], upstream: dict[str, set[str]]) -> list[str]:
    """Walk upstream edges inside the unresolved set until a task repeats: that loop is a cycle."""
    start = min(candidates)
    path: list[str] = [start]
    seen = {start: 0}
    node = start
    while True:
        node = min(u for u in upstream[node] if u in candidates)
        if node in seen:
            loop = [*path[seen[node]:], node]
            return list(reversed(loop))
        seen[node] = len(path)
        path.append(node)
