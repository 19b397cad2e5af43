"""Which host paths a sandboxed task may read, derived from the interpreter, never from ``sys.path``.

A Ray worker's ``sys.path`` is not the worker's own choice: Ray puts the driver's working directory
(and script directory) first on it, so a head started in ``$HOME`` would hand every task a read
rule for ``$HOME`` — its token, Ray's token, the store, ``~/.ssh``. The read list (Landlock at level
``seccomp``), the zygote's ``PYTHONPATH`` and the docker level's read-only binds therefore come from
here: the interpreter's prefixes and install scheme (stdlib, site-packages) and the directory of the
``lattice`` package itself — not its parent, which for an editable install is a source checkout.
Code a task ships by value needs no path at all.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig

#: realpaths that are never a read rule, whatever the interpreter layout says
NEVER_READABLE = frozenset({"/", "/root", "/home", "/tmp", "/var", "/etc", "/run"})


def lattice_package_dir() -> str:
    """The directory of the installed ``lattice`` package (``.../lattice``)."""
    import lattice

    return os.path.dirname(os.path.abspath(lattice.__file__))


def interpreter_paths() -> list[str]:
    """The interpreter's prefixes, its stdlib and site-packages directories that exist (deduplicated)."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    scheme = sysconfig.get_paths()
    paths += [scheme[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in scheme]
    paths += site.getsitepackages()
    return _clean(paths)


def task_read_paths() -> list[str]:
    """What a task's Python needs to read: the interpreter's paths plus the ``lattice`` package."""
    return _clean([*interpreter_paths(), lattice_package_dir()])


def child_python_path() -> str:
    """``PYTHONPATH`` for sandbox processes: only the root that ``lattice`` is imported from.

    Installed normally, that root is site-packages (already on the path); for an editable install it
    is the checkout, which the zygote needs to import ``lattice`` but a task may not read (its read
    rules cover ``lattice/`` only).
    """
    return os.path.dirname(lattice_package_dir())


def _clean(paths: list[str]) -> list[str]:
    out: list[str] = []
    for path in paths:
        if not path or not os.path.isabs(path) or not os.path.exists(path):
            continue
        if os.path.realpath(path) in NEVER_READABLE or path in out:
            continue
        out.append(path)
    return out


__all__ = ["child_python_path", "interpreter_paths", "lattice_package_dir", "task_read_paths"]
