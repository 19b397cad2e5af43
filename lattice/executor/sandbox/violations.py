"""Naming what the sandbox stopped: a Python audit hook plus a look at the task's exception.

A denied call reaches the task as an ordinary ``OSError`` (``EPERM`` from seccomp, ``EACCES`` from
Landlock, a DNS or connect failure without a network). The exception alone does not say which call
it was, so the child installs an audit hook (PEP 578) that remembers the last risky operation the
task attempted: a socket, connect, bind, DNS lookup, file open, signal, or a ctypes lookup of a denied
libc function (``libc.ptrace``, ``libc.mount``; a raw ``libc.syscall(nr, ...)`` is named "syscall":
ctypes audits the symbol lookup, not the call and its arguments). When the
task then fails with such an ``OSError``, :func:`classify` reports ``sandbox_violation`` naming it.

The hook is only an attribution aid: enforcement is the kernel's (seccomp, Landlock, namespaces,
cgroups), so a task that removes or fools the hook gains nothing but a vaguer error message.
"""

from __future__ import annotations

import errno
import sys
from collections import deque
from typing import Any

from lattice.errors import ErrorInfo, ErrorKind, error_info_from_exception

_WATCHED = frozenset(
    {
        "socket.__new__",
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "open",
        "os.kill",
        "os.killpg",
        "ctypes.dlsym",
    }
)
NETWORK_EVENTS = frozenset(
    {"socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo", "socket.gethostbyname"}
)
_NETWORK_CALLS = frozenset({event.split(".")[1] for event in NETWORK_EVENTS} | {"socket"})
DENIAL_ERRNOS = frozenset({errno.EPERM, errno.EACCES, errno.EROFS})


class CallRecorder:
    """Remembers the last few risky operations of the task (installed once, in the child only)."""

    def __init__(self, syscall_names: dict[int, str]) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=8)
        self._denied_names = frozenset(syscall_names.values())
        #: set when the task's exception is caught: later events (the traceback reading source
        #: files) must not hide the call that failed
        self.frozen = False

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.frozen or event not in _WATCHED:
            return
        try:
            record = self._describe(event, args)
        except Exception:  # noqa: BLE001 - a hook must never break the task
            return
        if record is not None:
            self.events.append(record)

    def _describe(self, event: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
        if event == "ctypes.dlsym":
            # ctypes raises no event per foreign call, only when it looks a symbol up: a task that
            # fetches libc.ptrace is about to call it. ``syscall(nr, ...)`` hides the number.
            name = args[1] if len(args) > 1 and isinstance(args[1], str) else None
            if name in self._denied_names or name == "syscall":
                return {"call": name, "via": "ctypes"}
            return None
        if event == "open":
            path, mode = args[0], args[1]
            if not isinstance(path, str | bytes):
                return None
            return {"call": "open", "path": str(path), "mode": str(mode)}
        if event == "socket.__new__":
            return {"call": "socket", "family": int(args[1]), "type": int(args[2])}
        if event in ("os.kill", "os.killpg"):
            return {"call": event.split(".")[1], "pid": args[0], "signal": args[1]}
        target = args[1] if len(args) > 1 else args[0]
        return {"call": event.split(".")[1], "target": repr(target)[:200]}

    def last(self) -> dict[str, Any] | None:
        return self.events[-1] if self.events else None

    def last_network(self) -> dict[str, Any] | None:
        for event in reversed(self.events):
            if event["call"] in _NETWORK_CALLS:
                return event
        return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 10:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return seen


def classify(
    exc: BaseException, error: dict[str, Any], level: str, network: bool, recorder: CallRecorder | None
) -> dict[str, Any]:
    """Turn the task's exception into a typed sandbox error where it was the sandbox that stopped it."""
    chain = _chain(exc)
    last = recorder.last() if recorder else None
    net = recorder.last_network() if recorder else None
    for item in chain:
        if isinstance(item, MemoryError):
            return _retype(error, ErrorKind.MEMORY_EXCEEDED, "the task ran out of its memory limit", {})
        if isinstance(item, OSError) and item.errno == errno.ENOSPC:
            return _retype(
                error,
                ErrorKind.SANDBOX_VIOLATION,
                "the task filled its working directory or /dev/shm past their size limit",
                {"limit": "max_workdir_mb"},
            )
        if isinstance(item, OSError) and item.errno == errno.EFBIG:
            return _retype(
                error,
                ErrorKind.SANDBOX_VIOLATION,
                "the task wrote a file past its size limit",
                {"limit": "max_file_size_mb"},
            )
        if (isinstance(item, BlockingIOError) and item.errno == errno.EAGAIN) or (
            isinstance(item, RuntimeError) and "can't start new thread" in str(item)
        ):
            return _retype(
                error,
                ErrorKind.SANDBOX_VIOLATION,
                "the task hit its limit on processes and threads",
                {"limit": "max_processes"},
            )
    from lattice.executor.sandbox.levels import profile

    parts = profile(level)
    if not parts.sandboxed:
        return error
    for item in chain:
        if not isinstance(item, OSError):
            continue
        if net and not network and parts.network_off:
            return _retype(
                error,
                ErrorKind.SANDBOX_VIOLATION,
                f"network access is disabled in the {level} sandbox (blocked: {net['call']})",
                {"blocked_call": net["call"], "call": net},
            )
        if item.errno in DENIAL_ERRNOS:
            call = last["call"] if last else "unknown"
            why = errno.errorcode.get(item.errno or 0, str(item.errno))
            return _retype(
                error,
                ErrorKind.SANDBOX_VIOLATION,
                f"the {level} sandbox blocked {call} ({why}): {item}",
                {"blocked_call": call, "call": last, "errno": why},
            )
    return error


def _retype(error: dict[str, Any], kind: ErrorKind, message: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        **error,
        "kind": str(kind),
        "message": f"{message} — {error.get('type')}: {error.get('message')}",
        "detail": {**(error.get("detail") or {}), **detail, "original_type": error.get("type")},
    }


def internal_error(exc: BaseException) -> dict[str, Any]:
    info = error_info_from_exception(exc, ErrorKind.INTERNAL)
    return ErrorInfo(ErrorKind.INTERNAL, info.type, f"sandbox setup failed: {info.message}", info.traceback).to_dict()


__all__ = ["CallRecorder", "classify", "internal_error"]
