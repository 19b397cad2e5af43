"""``--scheduling`` and ``lattice keys`` parsing: values reach the head's settings; bad ones are one line."""

from click.testing import CliRunner

import lattice.cli.main as cli_main
from tests.unit.cli.test_cli import parsed_settings


def test_scheduling_defaults_to_fair_and_takes_fifo(monkeypatch, tmp_path):
    env = {"LATTICE_HOME": str(tmp_path)}
    assert parsed_settings(monkeypatch, ["start", "--head"], env).scheduling == "fair"
    assert parsed_settings(monkeypatch, ["start", "--head", "--scheduling", "fifo"], env).scheduling == "fifo"
    env["LATTICE_SCHEDULING"] = "fifo"
    assert parsed_settings(monkeypatch, ["start", "--head"], env).scheduling == "fifo"


def test_bad_values_are_one_line_not_a_traceback(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(cli_main.cli, ["start", "--head", "--scheduling", "lottery"],
                        env={"LATTICE_HOME": str(tmp_path)})
    assert bad.exit_code == 2 and "'lottery' is not one of 'fair', 'fifo'" in bad.output
    for args, says in ((["--max-cpu", "0"], "--max-cpu"), (["--weight", "-1"], "--weight"),
                       (["--role", "owner"], "--role"), (["--max-running-runs", "0"], "--max-running-runs")):
        result = runner.invoke(cli_main.cli, ["keys", "create", "x", *args])
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output
    nohead = runner.invoke(cli_main.cli, ["keys", "list", "--data-dir", str(tmp_path)])
    assert nohead.exit_code == 1 and "no head runs for" in nohead.output
