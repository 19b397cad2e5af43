"""``LatticeSaver``: a LangGraph checkpointer that keeps threads in the Lattice head's store.

A thread's state then outlives the client process and can be resumed from any machine that reaches
the head. Values are serialized here, with the saver's serde (LangGraph's ``JsonPlusSerializer`` by
default), and travel as ``(type, bytes)``: the head stores bytes and never decodes them. Metadata
filters of ``list`` are therefore applied on the client, after decoding.

The requests are the client core's (:mod:`lattice.client.endpoints`, sent by
:class:`~lattice.client.transport.HeadHTTP`); what is here is LangGraph's side: configs into query
parameters and bodies, and rows back into ``CheckpointTuple`` objects.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.base import writes_sort_key as _writes_sort_key
from langgraph.checkpoint.serde.base import SerializerProtocol

from lattice.client import endpoints
from lattice.client.base import ClientConfig
from lattice.client.transport import HeadHTTP


def _typed(value: tuple[str, bytes]) -> dict[str, str]:
    return {"type": value[0], "data": base64.b64encode(value[1]).decode()}


def _untyped(item: dict[str, str]) -> tuple[str, bytes]:
    return item["type"], base64.b64decode(item["data"])


def _ref(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns,
                             "checkpoint_id": checkpoint_id}}


class LatticeSaver(BaseCheckpointSaver[int]):
    """Checkpoints over the head's HTTP API (``/api/v1/checkpoints``); sync and async, thread-safe."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 serde: SerializerProtocol | None = None, timeout: float = 30.0,
                 data_dir: str | Path | None = None) -> None:
        super().__init__(serde=serde)
        self.config = ClientConfig.discover(url, token, timeout, data_dir)
        self._http = HeadHTTP(self.config)
        self._send = self._http.send
        self._request = self._http.request  # a raw request, for a body the saver would never build

    def close(self) -> None:
        self._http.close()

    def _tuple(self, row: dict[str, Any], config: RunnableConfig | None = None) -> CheckpointTuple:
        thread_id, ns = row["thread_id"], row["checkpoint_ns"]
        writes = sorted(row["writes"], key=lambda w: _writes_sort_key(w["task_path"], w["task_id"], w["idx"]))
        parent = row["parent_checkpoint_id"]
        return CheckpointTuple(
            config=config or _ref(thread_id, ns, row["checkpoint_id"]),
            checkpoint=self.serde.loads_typed(_untyped(row["checkpoint"])),
            metadata=self.serde.loads_typed(_untyped(row["metadata"])),
            parent_config=_ref(thread_id, ns, parent) if parent else None,
            pending_writes=[(w["task_id"], w["channel"], self.serde.loads_typed(_untyped(w["value"])))
                            for w in writes],
        )

    # --- the sync interface -------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        checkpoint_id = get_checkpoint_id(config)
        params: dict[str, Any] = {"thread_id": conf["thread_id"], "checkpoint_ns": conf.get("checkpoint_ns", ""),
                                  "limit": 1}
        if checkpoint_id:
            params["checkpoint_id"] = checkpoint_id
        rows = self._send(endpoints.list_checkpoints(params))
        if not rows:
            return None
        return self._tuple(rows[0], config if checkpoint_id else None)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None) -> Iterator[CheckpointTuple]:
        params: dict[str, Any] = {}
        if config is not None:
            conf = config["configurable"]
            if conf.get("thread_id") is not None:
                params["thread_id"] = conf["thread_id"]
            if conf.get("checkpoint_ns") is not None:
                params["checkpoint_ns"] = conf["checkpoint_ns"]
            if checkpoint_id := get_checkpoint_id(config):
                params["checkpoint_id"] = checkpoint_id
        if before is not None and (before_id := get_checkpoint_id(before)):
            params["before"] = before_id
        if limit is not None and not filter:
            if limit <= 0:
                return
            params["limit"] = limit
        remaining = limit
        for row in self._send(endpoints.list_checkpoints(params)):
            if remaining is not None and remaining <= 0:
                return
            item = self._tuple(row)
            if filter and not all(item.metadata.get(key) == value for key, value in filter.items()):
                continue
            if remaining is not None:
                remaining -= 1
            yield item

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        conf = config["configurable"]
        thread_id, ns = conf["thread_id"], conf.get("checkpoint_ns", "")
        body = {
            "thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": conf.get("checkpoint_id"),
            "checkpoint": _typed(self.serde.dumps_typed(checkpoint)),
            "metadata": _typed(self.serde.dumps_typed(get_checkpoint_metadata(config, metadata))),
        }
        self._send(endpoints.put_checkpoint(body))
        return _ref(thread_id, ns, checkpoint["id"])

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        conf = config["configurable"]
        body = {
            "thread_id": conf["thread_id"], "checkpoint_ns": conf.get("checkpoint_ns", ""),
            "checkpoint_id": conf["checkpoint_id"], "task_id": task_id, "task_path": task_path,
            "writes": [{"idx": WRITES_IDX_MAP.get(channel, idx), "channel": channel,
                        "value": _typed(self.serde.dumps_typed(value))}
                       for idx, (channel, value) in enumerate(writes)],
        }
        self._send(endpoints.put_writes(body))

    def delete_thread(self, thread_id: str) -> None:
        self._send(endpoints.delete_thread(thread_id))

    # --- the async interface: the same calls in a thread ------------------------------------------
    # Not an httpx.AsyncClient: that is bound to the event loop that first used it, and LangGraph may call
    # one saver from several loops (an asyncio.run per invocation); one thread-safe sync pool serves them all.

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)
