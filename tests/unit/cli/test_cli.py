"""The CLI's parsing: flags and LATTICE_* variables reach the head's settings (starting a head is tested in
tests/integration/test_head_lifecycle.py)."""

from click.testing import CliRunner

import lattice.cli.main as cli_main


def parsed_settings(monkeypatch, args, env):
    captured = {}
    monkeypatch.setattr(cli_main, "_start_head", lambda settings, block, logs=None: captured.update(settings=settings))
    result = CliRunner().invoke(cli_main.cli, args, env=env)
    assert result.exit_code == 0, result.output
    return captured["settings"]


def test_env_vars_and_flags(monkeypatch, tmp_path):
    env = {"LATTICE_NUM_CPUS": "1", "LATTICE_MIN_SANDBOX": "subprocess", "LATTICE_PORT": "9123",
           "LATTICE_MAX_OUTPUT_MB": "8", "LATTICE_HOME": str(tmp_path)}
    settings = parsed_settings(monkeypatch, ["start", "--head"], env)
    assert settings.num_cpus == 1 and settings.min_sandbox == "subprocess"
    assert settings.port == 9123 and settings.max_output_mb == 8
    assert settings.data_dir == tmp_path.resolve() and settings.host == "127.0.0.1" and settings.auth
    flagged = parsed_settings(monkeypatch, ["start", "--head", "--port", "9200", "--sandbox", "seccomp"], env)
    assert flagged.port == 9200 and flagged.sandbox == "seccomp" and flagged.min_sandbox == "subprocess"


def test_sandbox_minimum_defaults_to_the_level(monkeypatch, tmp_path):
    env = {"LATTICE_HOME": str(tmp_path)}
    settings = parsed_settings(monkeypatch, ["start", "--head", "--sandbox", "seccomp"], env)
    assert settings.min_sandbox == "seccomp"


def test_start_needs_a_role_and_worker_needs_an_address():
    runner = CliRunner()
    assert "--head or --worker" in runner.invoke(cli_main.cli, ["start"]).output
    assert "--addr" in runner.invoke(cli_main.cli, ["start", "--worker"]).output
