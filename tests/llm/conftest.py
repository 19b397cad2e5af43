"""Fixtures for model pools with a real engine: ``transformers serve`` on a tiny random Llama built here.

Skipped, with the reason, where ``transformers[serving]`` is not installed (``pip install -e .[llm]``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from headproc import HeadProcess  # noqa: E402
from tinymodel import build_tiny_llama  # noqa: E402

from lattice import LatticeClient  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.fspath).startswith(str(HERE)):
            item.add_marker(pytest.mark.llm)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers", reason="model pool tests need transformers[serving] (pip install -e .[llm])")
    pytest.importorskip("fastapi")
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def llm_head(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[HeadProcess]:
    proc = HeadProcess(tmp_path_factory.mktemp("llm-head"), extra_args=["--num-cpus", "4"]).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(llm_head: HeadProcess) -> Iterator[LatticeClient]:
    with LatticeClient(llm_head.url, token=llm_head.token, progress=False) as c:
        yield c
