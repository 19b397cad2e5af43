"""What cloudpickle must not drag along when a node's classes travel by value.

A pydantic model class defined inside a function keeps that function's locals in
``__pydantic_parent_namespace__`` (to resolve forward references if the model is rebuilt later). When
the class is pickled by value (a state schema defined in a test or a notebook cell) those locals go too:
fixtures, ``sqlite3`` connections, compiled graphs, whatever the function held, which then fails to
pickle or to load on the worker. A *complete* model (``__pydantic_complete__``) never reads that
namespace again unless rebuilt, so the copy shipped by value carries only the entries that are types or
modules (what a forward reference can name), and the user's class is left untouched.
"""

from __future__ import annotations

import pickle
import types
from typing import Any

from cloudpickle import cloudpickle as _cloudpickle

_installed: dict[str, Any] = {}


def _namespace_entry_kept(value: Any) -> bool:
    return isinstance(value, (type, types.ModuleType)) or type(value).__module__ in ("typing", "typing_extensions")


def _class_getstate(obj: type) -> Any:
    clsdict, slotstate = _installed["original"](obj)
    namespace = clsdict.get("__pydantic_parent_namespace__")
    if isinstance(namespace, dict):
        clsdict["__pydantic_parent_namespace__"] = {
            key: value for key, value in namespace.items() if _namespace_entry_kept(value)}
    return clsdict, slotstate


def install() -> None:
    """Install the rules of this module for cloudpickle and pickle in this process (idempotent)."""
    if "original" in _installed or not hasattr(_cloudpickle, "_class_getstate"):
        return
    install_langgraph_sentinels()
    _installed["original"] = _cloudpickle._class_getstate
    _cloudpickle._class_getstate = _class_getstate
    install_exception_reducers()
    install_sentinel_reducers()


# --- exceptions that drop their attributes --------------------------------------------------------------
# ``BaseException.__reduce__`` keeps an exception's ``__dict__``; pydantic's ``ValidationError`` reduces
# to ``from_exception_data(...)`` and loses it, and LangGraph marks one it must recognise later with an
# attribute (``_langgraph_invalid_resume``). A raised node exception must reach the graph as itself.


def restore_exception_state(rebuild: Any, args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """The exception ``rebuild(*args)`` made, with the attributes it had set on it again."""
    exc = rebuild(*args)
    exc.__dict__.update(state)
    return exc


def _reduce_validation_error(exc: Any) -> Any:
    rebuild, args = exc.__reduce__()[:2]
    state = dict(getattr(exc, "__dict__", {}) or {})
    return (restore_exception_state, (rebuild, args, state)) if state else (rebuild, args)


def install_exception_reducers() -> None:
    import copyreg

    from pydantic_core import ValidationError

    copyreg.pickle(ValidationError, _reduce_validation_error)


# --- sentinels compared by identity --------------------------------------------------------------------
# ``dataclasses.MISSING`` is an instance of an importable class, so pickle makes a *new* one: a dataclass
# field shipped by value (a class of a module that travels by value) then has a default that ``is not
# MISSING``, and processing the class again fails ("cannot specify both default and default_factory").


def dataclasses_missing() -> Any:
    import dataclasses

    return dataclasses.MISSING


def install_sentinel_reducers() -> None:
    import copyreg
    import dataclasses

    copyreg.pickle(type(dataclasses.MISSING), lambda _missing: (dataclasses_missing, ()))


# LangGraph's own sentinels are bare ``object()`` instances (``MISSING``, ``SKIP_WRITE``, ``PASSTHROUGH``)
# compared with ``is``: a LangGraph object shipped by value (a functional ``@task`` called inside a node) must
# find them as they are on the worker, not copies. They travel by reference (module and attribute name).
_SENTINELS: dict[int, tuple[str, str]] = {}


def langgraph_sentinel(module: str, name: str) -> Any:
    """A LangGraph sentinel by module and name; refuses anything else (this is no general attribute getter)."""
    import importlib

    if not (module == "langgraph" or module.startswith("langgraph.")):
        raise pickle.UnpicklingError(f"not a LangGraph sentinel: {module}.{name}")
    value = getattr(importlib.import_module(module), name)
    if type(value) is not object:
        raise pickle.UnpicklingError(f"not a LangGraph sentinel: {module}.{name}")
    return value


def _reduce_bare_object(obj: object) -> Any:
    import sys

    if id(obj) not in _SENTINELS and len(sys.modules) != _installed.get("modules_seen"):
        _index_sentinels()  # LangGraph modules imported since the last look
    where = _SENTINELS.get(id(obj))
    if where is not None:
        return langgraph_sentinel, where
    return object.__reduce_ex__(obj, 2)


def _index_sentinels() -> None:
    import sys

    _installed["modules_seen"] = len(sys.modules)
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "langgraph" or module_name.startswith("langgraph.")):
            continue
        for name, value in list(vars(module).items()):
            if type(value) is object:
                _SENTINELS.setdefault(id(value), (module_name, name))


def install_langgraph_sentinels() -> None:
    """Pickle LangGraph's bare-object sentinels by reference (indexed when a bare object is pickled)."""
    import copyreg

    copyreg.pickle(object, _reduce_bare_object)
