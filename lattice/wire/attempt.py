"""What one attempt carries to an executor (:class:`AttemptPayload`) and what comes back (:class:`Envelope`).

Both sides of this boundary are Lattice's own code, but they run in different processes: the head builds
the payload and pickles it itself (C ``pickle``, protocol 5) before handing it to Ray; a Ray worker unpickles
it, runs the task and returns an envelope, which Ray keeps in its object store (downstream attempts receive
it as an argument) and hands to the head when the attempt ends. Both are plain data — names, numbers,
strings and ``(encoding, bytes)`` pairs that nobody on the way decodes — so neither side ever holds a user
object of the other.

They are frozen dataclasses with slots so that what crosses is typed and named in one place. Pickling is
hand-written (``__reduce__`` with the field values as one tuple) because the dataclass default (a
``__getstate__``/``__setstate__`` pair written in Python) is about four times slower than pickling the
dict these replaced, and the head pickles one payload per task on the loop that bounds fan-out throughput
(measured on the 2-core machine: dict 1.7 µs, default slots 7.2 µs, this 2.6 µs to pickle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

#: the builtin tasks a spec can name instead of shipping code (``lattice.executor.builtins`` implements
#: them; the head checks specs against these names without importing the executor)
BUILTIN_NAMES: frozenset[str] = frozenset({"noop", "echo", "sleep", "concat", "prompt_template", "json_extract",
                                            "text_split", "text_join", "python_code", "http_request", "llm_chat",
                                            "file_read", "file_write"})

DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024 * 1024
DEFAULT_LOG_LIMIT = 1024 * 1024

#: an encoded value: ``(encoding, bytes)``, see :mod:`lattice.wire.encoding`
Encoded = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class AttemptPayload:
    """Everything an executor needs to run one attempt, except the function's bytes and upstream outputs.

    Those two travel as separate Ray arguments (the function is put into Ray's object store once per
    workflow; upstream envelopes stay where their attempts left them), so the payload stays small.
    """

    run_id: str = ""
    task: str = ""
    #: ``{run_id}:{task}:{n}``: unique per attempt, also across retries and restarts
    attempt_id: str = ""
    #: a key per distinct function of a workflow: the executor caches the unpickled function under it
    fn_key: str | None = None
    #: the builtin to run instead of shipped code (one of :data:`BUILTIN_NAMES`)
    builtin: str | None = None
    #: the declared outputs, in declaration order
    outputs: tuple[str, ...] = ()
    #: literal inputs, still encoded
    literals: dict[str, Encoded] = field(default_factory=dict)
    #: input name -> (position among the upstream arguments, upstream output name)
    refs: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: ``SandboxConfig.from_dict`` fields, ``level`` included; None at level ``none``
    sandbox: dict[str, Any] | None = None
    #: environment of a sandboxed task (``LATTICE_RUN_ID``, ``LATTICE_TASK``, ``LATTICE_ATTEMPT_ID``)
    env: dict[str, str] = field(default_factory=dict)
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    #: most bytes of stdout and of stderr kept per attempt
    log_limit: int = DEFAULT_LOG_LIMIT
    #: the attempt span's W3C trace context (``traceparent``, ``tracestate``); empty when tracing is off
    trace: dict[str, str] = field(default_factory=dict)
    #: model pools a network-off sandboxed task reaches through the worker's gateway: alias -> ``{"url":
    #: the head's base URL for the pool, "key": the attempt's pool key}`` (``lattice.executor.pool_gateway``)
    pools: dict[str, dict[str, str]] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, ...]:
        return (AttemptPayload, _payload_values(self))


@dataclass(frozen=True, slots=True)
class Envelope:
    """What one attempt produced: its encoded outputs or its error, its logs, timings and where it ran.

    An executor never raises for a task: a failure is ``error`` (an :class:`~lattice.wire.failures.ErrorInfo`
    as a dict), so no user exception object crosses into the head.
    """

    outputs: dict[str, Encoded] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    stdout: str = ""
    stderr: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    node_id: str | None = None
    pid: int | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (Envelope, _envelope_values(self))


# attrgetter with several names builds the tuple in C: the cheapest way to list a slotted object's fields
_payload_values = attrgetter(*AttemptPayload.__dataclass_fields__)
_envelope_values = attrgetter(*Envelope.__dataclass_fields__)

__all__ = ["BUILTIN_NAMES", "AttemptPayload", "Encoded", "Envelope"]
