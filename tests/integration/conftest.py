"""Fixtures: a real head with a real embedded Ray cluster on a free loopback port, stopped afterwards."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from headproc import HeadProcess

from lattice import LatticeClient


@pytest.fixture(scope="session")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadProcess]:
    """One head for the whole session (Ray takes seconds to start); tests use their own workflows."""
    proc = HeadProcess(tmp_path_factory.mktemp("head")).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(head: HeadProcess) -> Iterator[LatticeClient]:
    with LatticeClient(head.url, token=head.token, progress=False) as c:
        yield c


@pytest.fixture
def head_factory(tmp_path: Path) -> Iterator[type]:
    """Heads a test starts and stops itself (restart tests); all stopped at the end."""
    started: list[HeadProcess] = []

    def make(data_dir: Path | None = None, extra_args: list[str] | None = None, port: int | None = None,
             cwd: Path | None = None, env: dict[str, str] | None = None) -> HeadProcess:
        proc = HeadProcess(data_dir or tmp_path / f"head{len(started)}", extra_args=extra_args or [], cwd=cwd,
                           env=env)
        if port is not None:
            proc.port = port
        started.append(proc)
        return proc.start()

    yield make  # type: ignore[misc]
    for proc in started:
        proc.stop()
