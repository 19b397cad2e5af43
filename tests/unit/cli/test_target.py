"""Which head a CLI command talks to: the URL given, else the data dir's live head; never a guessed port."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

import lattice.cli.main as cli_main
from lattice.cli.target import EXIT_NOT_RUNNING, HeadNotRunning, resolve_target
from lattice.utils.procs import ProcessIdentity


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATTICE_URL", raising=False)
    monkeypatch.delenv("LATTICE_TOKEN", raising=False)


def test_a_data_dir_without_a_head_is_not_running_not_port_8000(tmp_path) -> None:
    with pytest.raises(HeadNotRunning, match="none was started there") as caught:
        resolve_target(None, None, tmp_path)
    assert caught.value.exit_code == EXIT_NOT_RUNNING and "8000" not in caught.value.message


def test_a_live_head_json_is_used_and_a_dead_one_is_named(tmp_path) -> None:
    me = ProcessIdentity.of()
    record = {"pid": me.pid, "create_time": me.create_time, "url": "http://127.0.0.1:4567/"}
    (tmp_path / "head.json").write_text(json.dumps(record))
    target = resolve_target(None, None, tmp_path)
    assert target.url == "http://127.0.0.1:4567" and target.data_dir == tmp_path.resolve()
    (tmp_path / "head.json").write_text(json.dumps({**record, "create_time": me.create_time - 99}))
    with pytest.raises(HeadNotRunning, match=f"names pid {os.getpid()}.*which is gone"):
        resolve_target(None, None, tmp_path)


def test_an_explicit_url_or_lattice_url_wins(tmp_path, monkeypatch) -> None:
    assert resolve_target("http://h:1", "t", tmp_path).url == "http://h:1"
    monkeypatch.setenv("LATTICE_URL", "http://env:2/")
    assert resolve_target(None, None, tmp_path).url == "http://env:2"


@pytest.mark.parametrize("args", [["runs", "list"], ["runs", "show", "r1"], ["runs", "logs", "r1"],
                                  ["runs", "cancel", "r1"], ["runs", "retry", "r1"], ["status"]])
def test_every_command_exits_3_with_one_line_when_no_head_runs(tmp_path, args) -> None:
    result = CliRunner().invoke(cli_main.cli, [*args, "--data-dir", str(tmp_path)])
    assert result.exit_code == EXIT_NOT_RUNNING, result.output
    assert result.output.count("Error:") == 1 and "no Lattice head runs for" in result.output


def test_an_unreachable_url_exits_3(tmp_path) -> None:
    result = CliRunner().invoke(cli_main.cli, ["runs", "list", "--url", "http://127.0.0.1:9", "--token", "t"])
    assert result.exit_code == EXIT_NOT_RUNNING and "no Lattice head answers at http://127.0.0.1:9" in result.output
