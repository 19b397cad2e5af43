"""The CLI's requests to a head go through the client core: health while starting, join, status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import lattice.cli.main as cli_main
from tests.unit.client.fakes import LocalHead


def test_start_waits_for_health_and_nothing_else_counts(local_head: LocalHead) -> None:
    assert not cli_main._answers_health(local_head.url)  # no route yet: 404
    local_head.routes["GET /health"] = "<html>not a head</html>"
    assert not cli_main._answers_health(local_head.url)
    local_head.routes["GET /health"] = {"status": "ok", "version": "0", "uptime_s": 1.0}
    assert cli_main._answers_health(local_head.url)
    assert not cli_main._answers_health("http://127.0.0.1:9")


def test_join_sends_the_token_and_explains_refusals(local_head: LocalHead, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATTICE_TOKEN", raising=False)
    (tmp_path / "token").write_text("local-token\n")
    join = {"ray_address": "10.0.0.1:6379", "ray_token": "rt", "ray_version": "2"}
    local_head.routes["GET /api/v1/cluster/join"] = join
    assert cli_main._join_info(local_head.url, None, tmp_path) == join
    assert local_head.seen[-1].headers["authorization"] == "Bearer local-token"
    local_head.routes["GET /api/v1/cluster/join"] = (401, {"error": {"type": "unauthorized", "message": "no"}})
    with pytest.raises(click.ClickException, match="the head refused the token; pass --token"):
        cli_main._join_info(local_head.url, "wrong", tmp_path)
    assert local_head.seen[-1].headers["authorization"] == "Bearer wrong"
    with pytest.raises(click.ClickException, match=re.escape("cannot reach the head at http://127.0.0.1:9: ")):
        cli_main._join_info("http://127.0.0.1:9", None, tmp_path)


def test_status_json_asks_the_head_through_the_client(local_head: LocalHead, tmp_path: Path) -> None:
    health = {"status": "ok", "version": "0.1.0", "uptime_s": 3.0}
    resources = {"nodes": 1, "cpu": 2.0, "gpu": 0.0, "memory_mb": 1.0, "gpu_memory_mb": 0.0, "used_cpu": 0.0,
                 "used_gpu": 0.0, "used_memory_mb": 0.0, "running_tasks": 0, "queued_tasks": {"cpu": 0}}
    queues = {"scheduling": "fair", "tenants": []}
    local_head.routes.update({"GET /health": health, "GET /api/v1/cluster/nodes": {"nodes": []},
                              "GET /api/v1/cluster/resources": resources, "GET /api/v1/runs": {"runs": []},
                              "GET /api/v1/cluster/queues": queues})
    result = CliRunner().invoke(cli_main.cli, ["status", "--url", local_head.url, "--token", "t",
                                               "--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"running": True, "url": local_head.url, "health": health, "nodes": [],
                                         "resources": resources, "runs": [], "queues": queues}
    assert next(s for s in local_head.seen if s.path == "/api/v1/runs").params == {"limit": "5"}
