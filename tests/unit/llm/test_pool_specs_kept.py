"""Deployed pools are kept in the head's store (migration 0005), so that a restarted head deploys them again:
a real SQLite store and real pool managers (external pools: no engine process is involved)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lattice.core.cluster import ResourceManager
from lattice.core.store import Store
from lattice.llm.manager import PoolError, PoolManager
from lattice.wire.llm import PoolSpec


def spec(alias: str, **extra: object) -> PoolSpec:
    return PoolSpec(alias=alias, engine="external", model="m", base_url="http://127.0.0.1:9/v1", **extra)


def manager(store: Store) -> PoolManager:
    return PoolManager(ResourceManager(), None, "http://127.0.0.1:8000", specs=store)


async def started(store: Store) -> PoolManager:
    pools = manager(store)
    await pools.start()
    return pools


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'lattice.db'}")


def test_a_restarted_manager_deploys_what_the_last_one_had(store: Store) -> None:
    async def scenario() -> None:
        first = await started(store)
        await first.deploy(spec("a", max_concurrency=3))
        await first.deploy(spec("b"))
        await first.close()  # the head stops: engines stop, the specs stay

        second = await started(store)
        assert [v.alias for v in second.views()] == ["a", "b"]
        assert second.get("a").spec.max_concurrency == 3  # type: ignore[union-attr]
        assert await second.stop("a")
        await second.close()

        third = await started(store)
        assert [v.alias for v in third.views()] == ["b"]  # a stopped pool stays stopped
        await third.close()

    asyncio.run(scenario())


def test_a_refused_deploy_is_not_kept(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_PROVIDER_KEY", raising=False)

    async def scenario() -> None:
        pools = await started(store)
        with pytest.raises(PoolError):
            await pools.deploy(spec("bad", api_key_env="NO_SUCH_PROVIDER_KEY"))
        assert store.list_pools() == []
        await pools.close()

    asyncio.run(scenario())


def test_a_kept_pool_that_cannot_come_back_stays_kept_until_stopped(store: Store,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDER_KEY_FOR_TEST", "sk-test")

    async def scenario() -> None:
        first = await started(store)
        await first.deploy(spec("keyed", api_key_env="PROVIDER_KEY_FOR_TEST"))
        await first.close()

        monkeypatch.delenv("PROVIDER_KEY_FOR_TEST")  # the next head lacks the key: it cannot deploy it
        second = await started(store)
        assert second.views() == [] and [a for a, _ in store.list_pools()] == ["keyed"]
        assert await second.stop("keyed")  # the user can still remove it
        assert store.list_pools() == [] and not await second.stop("keyed")
        await second.close()

    asyncio.run(scenario())
