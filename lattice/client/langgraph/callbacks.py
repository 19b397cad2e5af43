"""LangChain callbacks of a remote node, relayed live to the caller's handlers, in order.

In-process, everything a node does that LangChain reports (a chat model's start, each streamed token,
its end, a nested chain or tool, ``push_message``) reaches the handlers of the node's config: LangGraph's
``stream_mode="messages"`` is such a handler (``StreamMessagesHandler``), so are an ``idle_timeout``'s
progress watch and any tracer. On a worker those handlers do not exist, so the node gets a relay
instead: a handler that posts each callback (its name, arguments and run ids) to the head as a run
event, while the node runs; the client reads the run's events and calls its own handlers with them
(LangChain's ``handle_event``, so each handler's ``ignore_*`` flags hold as they would in-process).

The relay mirrors what the caller's handlers are, because LangChain decides by type: a chat model
streams its tokens only when a handler is a streaming one (``_StreamingCallbackHandler``, v2:
``_V2StreamingCallbackHandler``), and ``push_message`` writes only to a ``StreamMessagesHandler`` (by
calling its ``_emit``, which is relayed as one more event). The worker's callback manager has the
caller's parent run id, tags and metadata, so the relayed runs nest under the node's run with the
metadata LangGraph streams (``langgraph_node``, ``langgraph_checkpoint_ns``, ...).

The events are posted by the task itself, so they are decoded like a custom stream chunk: the restricted
unpickler with LangGraph's and LangChain's data types (:func:`callback_safe_types`) and the client's
``trusted_types``.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cloudpickle

if TYPE_CHECKING:
    from lattice.wire.restricted_pickle import PickleTrust

#: the key of an event body that carries one relayed callback
_EVENT_KEY = "langgraph_callback_pickle"
#: a relayed ``StreamMessagesHandler._emit`` (``push_message``)
_EMIT = "_emit"
#: callback name -> the handler flag that mutes it (``langchain_core.callbacks.manager``'s own table)
_IGNORE: dict[str, str | None] = {
    "on_llm_start": "ignore_llm", "on_llm_new_token": "ignore_llm", "on_llm_end": "ignore_llm",
    "on_llm_error": "ignore_llm", "on_stream_event": "ignore_llm", "on_chat_model_start": "ignore_chat_model",
    "on_chain_start": "ignore_chain", "on_chain_end": "ignore_chain", "on_chain_error": "ignore_chain",
    "on_tool_start": "ignore_agent", "on_tool_end": "ignore_agent", "on_tool_error": "ignore_agent",
    "on_agent_action": "ignore_agent", "on_agent_finish": "ignore_agent",
    "on_retriever_start": "ignore_retriever", "on_retriever_end": "ignore_retriever",
    "on_retriever_error": "ignore_retriever", "on_retry": "ignore_retry",
    "on_custom_event": "ignore_custom_event", "on_text": None,
}


def handlers_of(callbacks: Any) -> list[Any]:
    """The handlers of a config's ``callbacks`` (a manager or a list of handlers)."""
    from langchain_core.callbacks.base import BaseCallbackManager

    if isinstance(callbacks, BaseCallbackManager):
        return list(callbacks.handlers)
    if isinstance(callbacks, list):
        return list(callbacks)
    return []


def relay_spec(callbacks: Any, portable: Callable[[Any], bool]) -> dict[str, Any] | None:
    """What the worker needs to relay a node's callbacks to ``callbacks``; ``None`` when no one listens."""
    from langchain_core.callbacks.base import BaseCallbackManager
    from langchain_core.tracers._streaming import _StreamingCallbackHandler
    from langgraph.pregel._messages import StreamMessagesHandler

    handlers = handlers_of(callbacks)
    if not handlers:
        return None
    v2 = _v2_handler_type()
    spec: dict[str, Any] = {
        "streaming": any(isinstance(h, _StreamingCallbackHandler) for h in handlers),
        "v2": v2 is not None and any(isinstance(h, v2) for h in handlers),
        "messages": any(isinstance(h, StreamMessagesHandler) for h in handlers),
        "parent_run_id": None, "tags": [], "inheritable_tags": [], "metadata": {}, "inheritable_metadata": {},
    }
    if isinstance(callbacks, BaseCallbackManager):
        spec["parent_run_id"] = callbacks.parent_run_id
        spec["tags"], spec["inheritable_tags"] = list(callbacks.tags), list(callbacks.inheritable_tags)
        spec["metadata"] = {k: v for k, v in callbacks.metadata.items() if portable(v)}
        spec["inheritable_metadata"] = {k: v for k, v in callbacks.inheritable_metadata.items() if portable(v)}
    return spec


def _v2_handler_type() -> type | None:
    """LangChain's v2 streaming marker class, where this langchain-core has it."""
    try:
        from langchain_core.tracers._streaming import _V2StreamingCallbackHandler
    except ImportError:
        return None
    return _V2StreamingCallbackHandler


# --- the worker's half --------------------------------------------------------------------------------


def encode_callback(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """One callback as a JSON event body (cloudpickled: run ids, messages, generations)."""
    return {_EVENT_KEY: base64.b64encode(cloudpickle.dumps((name, args, kwargs))).decode()}


@functools.cache
def _relay_class(streaming: bool, v2: bool, messages: bool) -> type:
    """A handler class that is what the caller's handlers are (by type) and posts every callback."""
    from langchain_core.callbacks.base import BaseCallbackHandler

    bases: list[type] = []
    if messages:
        from langgraph.pregel._messages import StreamMessagesHandler, StreamMessagesHandlerV2

        bases.append(StreamMessagesHandlerV2 if v2 else StreamMessagesHandler)
    else:
        if v2 and (marker := _v2_handler_type()) is not None:
            bases.append(marker)
        if streaming:
            from langchain_core.tracers._streaming import _StreamingCallbackHandler

            bases.append(_StreamingCallbackHandler)
        bases.append(BaseCallbackHandler)

    def __init__(self: Any, post: Callable[[dict[str, Any]], None]) -> None:
        self._post = post
        # what StreamMessagesHandler's own methods read (push_message checks ``subgraphs``/``parent_ns``):
        # the caller's handlers decide, on replay
        self.subgraphs, self.parent_ns, self.metadata, self.seen = True, None, {}, set()

    def relayed(name: str) -> Callable[..., None]:
        def method(self: Any, *args: Any, **kwargs: Any) -> None:
            self._post(encode_callback(name, args, kwargs))

        method.__name__ = name
        return method

    namespace: dict[str, Any] = {"__init__": __init__, "run_inline": True, "raise_error": True,
                                 "tap_output_iter": lambda self, run_id, output: output,
                                 "tap_output_aiter": lambda self, run_id, output: output}
    for name in (*_IGNORE, _EMIT):
        namespace[name] = relayed(name)
    return type("LatticeCallbackRelay", tuple(bases), namespace)


def worker_callbacks(spec: dict[str, Any], post: Callable[[dict[str, Any]], None]) -> Any:
    """The callback manager a remote node runs with: the relay, under the caller's run, tags and metadata."""
    from langchain_core.callbacks.manager import CallbackManager

    relay = _relay_class(bool(spec.get("streaming")), bool(spec.get("v2")), bool(spec.get("messages")))(post)
    return CallbackManager(handlers=[relay], inheritable_handlers=[relay], parent_run_id=spec.get("parent_run_id"),
                           tags=list(spec.get("tags") or []), inheritable_tags=list(spec.get("inheritable_tags") or []),
                           metadata=dict(spec.get("metadata") or {}),
                           inheritable_metadata=dict(spec.get("inheritable_metadata") or {}))


# --- the client's half --------------------------------------------------------------------------------


@functools.cache
def callback_safe_types() -> tuple[type, ...]:
    """What callbacks carry beyond a node's outcome types: run ids, generations, documents."""
    import uuid

    from langchain_core import outputs
    from langchain_core.documents import Document

    found: list[type] = [uuid.UUID, uuid.SafeUUID, Document]
    for name in ("LLMResult", "ChatResult", "Generation", "GenerationChunk", "ChatGeneration",
                 "ChatGenerationChunk", "RunInfo"):
        if isinstance(getattr(outputs, name, None), type):
            found.append(getattr(outputs, name))
    return tuple(found)


def decode_callback(data: dict[str, Any], trust: PickleTrust,
                    task: str | None = None) -> tuple[str, tuple[Any, ...], dict[str, Any]] | None:
    """``(name, args, kwargs)`` of an event made by :func:`encode_callback`; ``None`` for another event."""
    if _EVENT_KEY not in data:
        return None
    from lattice.wire.encoding import Encoding, decode_task_value

    raw = base64.b64decode(data[_EVENT_KEY])
    value = decode_task_value(Encoding.SANDBOXED_PICKLE, raw, trust.but(trusted_types=callback_safe_types()),
                              task=task, output="relayed callback")
    name, args, kwargs = value
    if name != _EMIT and name not in _IGNORE:
        raise ValueError(f"lattice: node {task!r} relayed an unknown callback {name!r}")
    return str(name), tuple(args), dict(kwargs)


def replay(callbacks: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Call the caller's handlers with one relayed callback, as LangChain's callback manager would."""
    from langchain_core.callbacks.manager import handle_event

    handlers = handlers_of(callbacks)
    if name == _EMIT:  # push_message: what it does with each StreamMessagesHandler in-process
        from langgraph.pregel._messages import StreamMessagesHandler

        meta, message = args
        for handler in handlers:
            if isinstance(handler, StreamMessagesHandler) and (
                    handler.subgraphs or not meta[0] or meta[0] == handler.parent_ns):
                handler._emit(meta, message, **kwargs)
        return
    handle_event(handlers, name, _IGNORE[name], *args, **kwargs)
