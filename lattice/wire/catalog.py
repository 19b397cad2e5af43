"""The task catalog: what each builtin task takes and returns, for the Playground's palette and HTTP users.

It lives in the wire (not next to the implementations in ``lattice.executor.builtins``) so the head can
describe the builtins without importing the executor; a unit test keeps the two in step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lattice.wire.resources import Resources
from lattice.wire.spec import NAME_PATTERN, CodeSpec

ValueType = Literal["any", "string", "number", "integer", "boolean", "object", "array"]


class CatalogPort(BaseModel):
    """One input or output of a catalog task."""

    name: str
    type: ValueType = "any"
    required: bool = True
    default: Any = None
    description: str = ""
    secret: bool = Field(False, description="a credential: the head shows it back only as a redaction mark")


class TaskTemplate(BaseModel):
    """What a registered task puts into a workflow spec besides its name and inputs: its code and policy."""

    model_config = ConfigDict(extra="forbid")

    code: CodeSpec
    resources: Resources = Field(default_factory=Resources)
    timeout: float | None = Field(None, gt=0)
    retries: int = Field(0, ge=0, le=100)
    priority: int = Field(0, ge=-1000, le=1000)
    sandbox: str | None = None
    network: bool | None = None


class CatalogTask(BaseModel):
    """One task of the palette: a builtin (a spec names it with ``builtin``) or a registered ``@task``
    (a spec carries its ``template``'s code), with its ports and what it does."""

    name: str = Field(description="a builtin's name, or a registered task's")
    title: str
    category: str
    description: str
    inputs: list[CatalogPort]
    outputs: list[CatalogPort]
    kind: Literal["builtin", "registered"] = "builtin"
    template: TaskTemplate | None = Field(None, description="a registered task's code and policy")


class RegisterTask(BaseModel):
    """``POST /api/v1/catalog/tasks``: publish an SDK ``@task`` to the Playground's palette."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field("", max_length=10_000)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(min_length=1)
    template: TaskTemplate


class TaskCatalog(BaseModel):
    tasks: list[CatalogTask]


def _port(name: str, type_: ValueType = "any", required: bool = True, default: Any = None,
          description: str = "", secret: bool = False) -> CatalogPort:
    return CatalogPort(name=name, type=type_, required=required, default=default, description=description,
                       secret=secret)


_RESULT = [_port("result")]

BUILTIN_CATALOG: tuple[CatalogTask, ...] = (
    CatalogTask(name="noop", title="No-op", category="control", description="Does nothing; result is null.",
                inputs=[], outputs=_RESULT),
    CatalogTask(name="echo", title="Echo", category="control", description="Returns its inputs as an object.",
                inputs=[_port("value", required=False, description="any value to pass through")],
                outputs=[_port("result", "object")]),
    CatalogTask(name="sleep", title="Sleep", category="control", description="Sleeps, then returns the seconds.",
                inputs=[_port("seconds", "number", False, 1.0)], outputs=[_port("result", "number")]),
    CatalogTask(name="concat", title="Concatenate", category="text",
                description="Joins its inputs a, b (in name order) with sep.",
                inputs=[_port("a", "string"), _port("b", "string"), _port("sep", "string", False, " ")],
                outputs=[_port("result", "string")]),
    CatalogTask(name="prompt_template", title="Prompt template", category="llm",
                description="Fills {name} placeholders of a template from the values object.",
                inputs=[_port("template", "string"), _port("values", "object", False, {})],
                outputs=[_port("result", "string")]),
    CatalogTask(name="json_extract", title="JSON extract", category="data",
                description="Reads a dotted path (a.b.0.c) out of a JSON value; data may be a JSON string.",
                inputs=[_port("data", "any"), _port("path", "string")], outputs=_RESULT),
    CatalogTask(name="text_split", title="Text split", category="text",
                description="Splits text on sep (default: a newline); empty parts are dropped.",
                inputs=[_port("text", "string"), _port("sep", "string", False, "\n")],
                outputs=[_port("result", "array")]),
    CatalogTask(name="text_join", title="Text join", category="text",
                description="Joins a list of items into one string with sep (default: a newline).",
                inputs=[_port("items", "array"), _port("sep", "string", False, "\n")],
                outputs=[_port("result", "string")]),
)

_OPTIONAL = {"required": False}

AGENT_CATALOG: tuple[CatalogTask, ...] = (
    CatalogTask(name="python_code", title="Python code", category="code",
                description="Runs Python code under the head's sandbox with `inputs` in scope; whatever it "
                            "assigns to `result` is the output.",
                inputs=[_port("code", "string", description="Python source; set `result`"),
                        _port("inputs", "object", False, {}, "values the code reads as `inputs`")],
                outputs=_RESULT),
    CatalogTask(name="http_request", title="HTTP request", category="io",
                description="One HTTP request with a timeout and a bounded response (needs network: true at "
                            "sandbox levels that turn the network off).",
                inputs=[_port("url", "string"), _port("method", "string", False, "GET"),
                        _port("headers", "object", False, {}), _port("body", "any", False),
                        _port("timeout_s", "number", False, 30.0), _port("max_bytes", "integer", False, 10485760)],
                outputs=[_port("status", "integer"), _port("headers", "object"), _port("text", "string"),
                         _port("json", "any")]),
    CatalogTask(name="llm_chat", title="LLM chat", category="llm",
                description="A chat completion from any OpenAI-compatible endpoint (base URL, model and key as "
                            "inputs, or the task's OPENAI_BASE_URL / OPENAI_MODEL / OPENAI_API_KEY).",
                inputs=[_port("prompt", "string", False, description="or messages"),
                        _port("messages", "array", False, description="[{role, content}, ...]"),
                        _port("system", "string", False), _port("base_url", "string", False),
                        _port("model", "string", False),
                        _port("api_key", "string", False, description="never shown back", secret=True),
                        _port("temperature", "number", False), _port("max_tokens", "integer", False),
                        _port("timeout_s", "number", False, 120.0)],
                outputs=[_port("result", "string"), _port("usage", "object")]),
    CatalogTask(name="file_write", title="Write file", category="io",
                description="Writes content (text, or any value as JSON) to a path inside the run's workspace.",
                inputs=[_port("path", "string", description="relative; no '..', no symlinks"),
                        _port("content", "any"), _port("append", "boolean", False, False)],
                outputs=[_port("result", "object")]),
    CatalogTask(name="file_read", title="Read file", category="io",
                description="Reads a text file from the run's workspace (at most max_bytes).",
                inputs=[_port("path", "string", description="relative; no '..', no symlinks"),
                        _port("max_bytes", "integer", False, 10485760)],
                outputs=[_port("result", "string")]),
)
BUILTIN_CATALOG = BUILTIN_CATALOG + AGENT_CATALOG

CATALOG_NAMES: frozenset[str] = frozenset(task.name for task in BUILTIN_CATALOG)

#: inputs that hold credentials: every view of a spec or a run's inputs shows them only as :data:`REDACTED`
SECRET_INPUTS: frozenset[str] = frozenset(p.name for t in BUILTIN_CATALOG for p in t.inputs if p.secret)
REDACTED = "***redacted***"


def redact_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """``{input: item}`` with each secret input's literal replaced by :data:`REDACTED` (references kept)."""
    return {name: ({"value": REDACTED} if name in SECRET_INPUTS and isinstance(item, dict) and "task" not in item
                   else item) for name, item in inputs.items()}


def redact_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored ``lattice.workflow/v1`` spec as the API shows it: secret literal inputs redacted."""
    tasks = spec.get("tasks")
    if not isinstance(tasks, list):
        return spec
    return {**spec, "tasks": [{**t, "inputs": redact_inputs(t["inputs"])} if isinstance(t, dict)
                              and isinstance(t.get("inputs"), dict) else t for t in tasks]}


def redact_run_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """A run's own inputs (``{task: {input: item}}``) as the API shows them."""
    return {task: redact_inputs(values) if isinstance(values, dict) else values for task, values in inputs.items()}
