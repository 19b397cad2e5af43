"""A model pool deployed on a head is deployed again by the next head of the same data dir (a clean stop,
then a start): runs the new head resumes, and their tasks' ``llm=`` calls, find it. A real head, twice; an
external pool, so no engine process is involved."""

from __future__ import annotations

from pathlib import Path

from lattice import LatticeClient
from tests.headproc import HeadProcess


def test_a_restarted_head_deploys_its_pools_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "head"
    head = HeadProcess(data_dir, extra_args=["--num-cpus", "1"]).start()
    try:
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            client.llm.deploy("kept", engine="external", model="m", base_url="http://127.0.0.1:9/v1",
                              max_concurrency=3)
            client.llm.deploy("dropped", engine="external", model="m", base_url="http://127.0.0.1:9/v1")
            client.llm.stop("dropped")
    finally:
        head.stop()
    again = HeadProcess(data_dir, port=head.port, extra_args=["--num-cpus", "1"]).start()
    try:
        with LatticeClient(again.url, token=again.token, progress=False) as client:
            pools = {p.alias: p for p in client.llm.list()}
            assert list(pools) == ["kept"] and pools["kept"].max_concurrency == 3, pools
        assert "deployed again from the store" in again.log_path.read_text()
    finally:
        again.stop()
