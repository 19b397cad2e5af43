"""Bad flags fail at once with one line naming the flag; settings that cannot work are refused before
anything starts (issue 13). No head is started here: a test that reached one would hang or fail."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import lattice.cli.main as cli_main
from lattice.cli import checks


@pytest.fixture
def never_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command gets as far as spawning a head."""
    def spawn(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a head was started for a bad flag")

    monkeypatch.setattr(cli_main, "subprocess", SimpleNamespace(Popen=spawn, STDOUT=-2, DEVNULL=-3))
    monkeypatch.setattr("lattice.cli.server.serve", spawn)


@pytest.mark.parametrize(("args", "flag"), [
    (["--port", "99999"], "--port"),
    (["--port", "0"], "--port"),
    (["--num-cpus", "-3"], "--num-cpus"),
    (["--num-gpus", "-1"], "--num-gpus"),
    (["--object-store-mb", "10"], "--object-store-mb"),
    (["--max-body-mb", "0"], "--max-body-mb"),
    (["--io-slots", "0"], "--io-slots"),
    (["--max-output-mb", "-5"], "--max-output-mb"),
    (["--host", "no-such-host.invalid"], "--host"),
    (["--store-url", "not a url"], "--store-url"),
    (["--log-level", "LOUD"], "--log-level"),
    (["--sandbox", "vm"], "--sandbox"),
])
def test_a_bad_head_flag_is_one_line_naming_it_at_once(never_start: None, tmp_path, args, flag) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(cli_main.cli, ["start", "--head", "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and flag in error_lines[0], result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert time.monotonic() - started < 10  # at once: it did not wait for Ray


@pytest.mark.parametrize(("args", "flag"), [
    (["--addr", "nohost"], "--addr"),
    (["--addr", "http://h:notaport"], "--addr"),
    (["--addr", "h:1", "--node-ip", "x.y"], "--node-ip"),
    (["--addr", "h:1", "--num-cpus", "-1"], "--num-cpus"),
])
def test_a_bad_worker_flag_is_one_line_naming_it(never_start: None, tmp_path, args, flag) -> None:
    result = CliRunner().invoke(cli_main.cli, ["start", "--worker", "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert flag in result.output and "Traceback" not in result.output


def test_a_bad_sandbox_config_variable_is_refused_before_start(never_start: None, tmp_path) -> None:
    for raw, said in (("{not json", "LATTICE_SANDBOX_CONFIG is not valid"),
                      ('{"bogus": 1}', "unknown SandboxConfig field"),
                      ('{"max_memory_mb": "x"}', "max_memory_mb")):
        result = CliRunner().invoke(cli_main.cli, ["start", "--head", "--data-dir", str(tmp_path)],
                                    env={"LATTICE_SANDBOX_CONFIG": raw})
        assert result.exit_code == 2 and said in result.output, result.output


def test_a_default_below_the_minimum_is_refused_with_the_fix(never_start: None, tmp_path) -> None:
    result = CliRunner().invoke(cli_main.cli, ["start", "--head", "--data-dir", str(tmp_path),
                                               "--min-sandbox", "docker", "--sandbox", "none"])
    assert result.exit_code == 2
    assert "--sandbox none is weaker than --min-sandbox docker" in result.output
    assert "Pass --sandbox docker" in result.output


def test_docker_without_an_engine_is_refused_at_start(never_start: None, tmp_path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    for args in (["--sandbox", "docker"], ["--sandbox", "docker", "--min-sandbox", "docker"]):
        result = CliRunner().invoke(cli_main.cli, ["start", "--head", "--data-dir", str(tmp_path), *args], env=env)
        assert result.exit_code == 2, result.output
        assert "no Docker engine answers" in result.output and "systemctl start docker" in result.output


def test_docker_without_a_local_engine_only_warns_when_joining_a_cluster(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    warnings = checks.check_sandbox("docker", "docker", joins_cluster=True, raw_sandbox_config=None)
    assert len(warnings) == 1 and "no Docker engine answers" in warnings[0]
    assert checks.check_sandbox("seccomp", "none", joins_cluster=False, raw_sandbox_config=None) == []


def test_a_port_in_use_is_named_before_anything_starts(never_start: None, tmp_path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = CliRunner().invoke(cli_main.cli, ["start", "--head", "--data-dir", str(tmp_path),
                                                   "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert f"--port {port}: 127.0.0.1:{port} is already in use" in result.output
    assert checks.port_in_use("127.0.0.1", port) is None  # free again once the holder closed
