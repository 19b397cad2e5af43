"""Tests of LangGraph's suite that cannot pass with their nodes on Lattice, each with the reason.

A remote node runs in another process: what it does to objects of the test's own process (a nonlocal
counter, a list it appends to, a flag, a ``threading.Event``) happens to a copy there. Keys are
``test_file::test_name`` (all parameters) or ``test_file::test_name[params]``. Mirrored as a table in
``docs/langgraph.md``.
"""

from __future__ import annotations

EXCLUDED: dict[str, str] = {}
