"""Run LangGraph nodes on a Lattice cluster: ``LangGraphClient`` and the ``LatticeSaver`` checkpointer.

Needs the ``langgraph`` extra (``pip install lattice-agent[langgraph]``).
"""

from lattice.client.langgraph.checkpointer import LatticeSaver
from lattice.client.langgraph.client import LangGraphClient

__all__ = ["LangGraphClient", "LatticeSaver"]
