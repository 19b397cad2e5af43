"""Task code by value that keeps its file name and lines, so tracebacks on a worker name the user's file.

cloudpickle rebuilds a function's code object with ``co_filename = "<dynamic-code>"`` (to make its payload
deterministic), so a task's traceback said ``File "<dynamic-code>", line 12`` and showed no source. Here a
code object travels as ``marshal`` bytes (the format of ``.pyc`` files: it keeps the file name, line table
and nested code objects as they are) together with the source lines it spans; loading it registers those
lines in :mod:`linecache` under the original file name where that file cannot be read (another machine, a
container), so :mod:`traceback` prints the user's file, line and source text.

``marshal`` ties the payload to the Python version, which cloudpickle's code payload already does and Ray
requires of every node anyway. :func:`load_code` is what the pickle calls on the worker: Lattice is
installed there, so it is pickled by reference.
"""

from __future__ import annotations

import linecache
import marshal
import os
import types
from collections import ChainMap
from typing import Any

import cloudpickle


def _line_span(code: types.CodeType) -> tuple[int, int]:
    """First and last source line of a code object and the code nested in it."""
    lines = [line for _, _, line in code.co_lines() if line is not None]
    first, last = code.co_firstlineno, max(lines, default=code.co_firstlineno)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            last = max(last, _line_span(const)[1])
    return first, last


def _source_lines(code: types.CodeType) -> tuple[int, tuple[str, ...]]:
    first, last = _line_span(code)
    lines = linecache.getlines(code.co_filename)
    if not lines:
        return first, ()
    return first, tuple(lines[first - 1:last])


def reduce_code(code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
    try:
        data = marshal.dumps(code)
    except ValueError:  # a hand-built code object holding a constant marshal cannot write: cloudpickle's way
        return cloudpickle.cloudpickle._code_reduce(code)  # type: ignore[attr-defined,no-any-return]
    first, lines = _source_lines(code)
    return load_code, (data, code.co_filename, first, lines)


def load_code(data: bytes, filename: str, first_line: int, lines: tuple[str, ...]) -> types.CodeType:
    """Rebuild a shipped code object and make its source lines findable under its own file name."""
    code = marshal.loads(data)
    if lines:
        register_source(filename, first_line, lines)
    return code


def register_source(filename: str, first_line: int, lines: tuple[str, ...]) -> None:
    """Put ``lines`` at ``first_line`` of ``filename`` in :mod:`linecache`, merged with what earlier code
    objects of the same file registered, unless the real file is readable here (then it is the source)."""
    if not filename or filename.startswith("<") or os.path.exists(filename):
        return
    entry = linecache.cache.get(filename)
    # an entry with mtime None is one this function (or a loader) made; keep what it holds
    known = list(entry[2]) if entry is not None and len(entry) == 4 and entry[1] is None else []
    end = first_line - 1 + len(lines)
    if len(known) < end:
        known.extend("\n" for _ in range(end - len(known)))
    known[first_line - 1:end] = [line if line.endswith("\n") else line + "\n" for line in lines]
    linecache.cache[filename] = (sum(map(len, known)), None, known, filename)


class CodePickler(cloudpickle.Pickler):
    """cloudpickle, except that code objects keep their file name and carry their source lines."""

    dispatch_table = ChainMap({types.CodeType: reduce_code}, cloudpickle.Pickler.dispatch_table)


def dumps(obj: Any) -> bytes:
    """``cloudpickle.dumps`` with :class:`CodePickler`; the bytes load with plain ``cloudpickle.loads``."""
    import io

    buffer = io.BytesIO()
    CodePickler(buffer, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
    return buffer.getvalue()


__all__ = ["CodePickler", "dumps", "load_code", "register_source"]
