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
    """Trim pydantic parent namespaces from classes cloudpickle ships by value (idempotent)."""
    if "original" in _installed or not hasattr(_cloudpickle, "_class_getstate"):
        return
    _installed["original"] = _cloudpickle._class_getstate
    _cloudpickle._class_getstate = _class_getstate
