"""``lattice llm`` flag errors: one clear line and exit status 2, before any head is asked."""

from __future__ import annotations

from click.testing import CliRunner

from lattice.cli.main import cli


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["llm", *args, "--url", "http://127.0.0.1:9", "--token", "t"])
    return result.exit_code, result.output


def test_replicas_range_must_be_ordered() -> None:
    code, out = run("deploy", "p", "--engine", "transformers", "--model", "m", "--replicas", "3..1")
    assert code == 2 and "MAX must be at least MIN" in out and "Traceback" not in out


def test_external_needs_a_base_url() -> None:
    code, out = run("deploy", "p", "--engine", "external", "--model", "gpt")
    assert code == 2 and "base_url" in out and "Traceback" not in out


def test_unknown_engine_is_refused() -> None:
    code, out = run("deploy", "p", "--engine", "nope", "--model", "m")
    assert code == 2 and "nope" in out


def test_no_head_is_one_line() -> None:
    code, out = run("list")
    assert code == 3 and "Traceback" not in out and out.strip().count("\n") <= 2  # 3: no head answers
