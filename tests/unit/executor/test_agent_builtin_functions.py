"""The agent builtins called directly: workspace confinement (absolute paths, ``..``, symlinks at any step),
bounded reads, Python code, argument checks, and the redaction of secret inputs in the API's views.
(The network builtins against real loopback servers, and all of them as tasks on a real head, are in
``tests/integration/test_agent_builtins.py``.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lattice.executor import agent_builtins as ab
from lattice.wire.catalog import REDACTED, SECRET_INPUTS, redact_run_inputs, redact_spec


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws" / "run1"
    monkeypatch.setenv("LATTICE_WORKSPACE", str(ws))
    return ws


def test_write_then_read_inside_the_workspace(workspace: Path) -> None:
    assert ab.file_write({"path": "notes/a.txt", "content": "hello"}) == {"result": {"path": "notes/a.txt", "bytes": 5}}
    ab.file_write({"path": "notes/a.txt", "content": " world", "append": True})
    ab.file_write({"path": "data.json", "content": {"k": [1, 2]}})
    assert (workspace / "notes" / "a.txt").read_text() == "hello world"
    assert ab.file_read({"path": "./notes/a.txt"}) == {"result": "hello world"}
    assert ab.file_read({"path": "data.json"}) == {"result": '{"k": [1, 2]}'}
    with pytest.raises(ab.ResponseTooLarge, match="max_bytes=3"):
        ab.file_read({"path": "notes/a.txt", "max_bytes": 3})
    with pytest.raises(FileNotFoundError):
        ab.file_read({"path": "missing.txt"})


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.txt", "a/../../outside.txt", "", ".", 5])
def test_paths_that_leave_the_workspace_are_refused(workspace: Path, path: object) -> None:
    with pytest.raises(ab.WorkspacePathError):
        ab.file_write({"path": path, "content": "x"})
    with pytest.raises(ab.WorkspacePathError):
        ab.file_read({"path": path})
    assert not (workspace.parent / "outside.txt").exists()


def test_symlinks_out_of_the_workspace_are_refused_at_every_step(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    workspace.mkdir(parents=True)
    os.symlink(outside, workspace / "dir-link")
    os.symlink(outside / "secret.txt", workspace / "file-link")
    for path in ("dir-link/secret.txt", "file-link"):
        with pytest.raises(ab.WorkspacePathError, match="symlink"):
            ab.file_read({"path": path})
    with pytest.raises(ab.WorkspacePathError, match="symlink"):
        ab.file_write({"path": "dir-link/new.txt", "content": "x"})
    with pytest.raises(ab.WorkspacePathError, match="symlink"):
        ab.file_write({"path": "file-link", "content": "overwritten"})
    assert (outside / "secret.txt").read_text() == "top secret" and not (outside / "new.txt").exists()


def test_python_code_runs_with_its_inputs_and_returns_result() -> None:
    assert ab.python_code({"code": "result = sum(inputs['xs']) * 2", "inputs": {"xs": [1, 2, 3]}}) == {"result": 12}
    assert ab.python_code({"code": "x = 1"}) == {"result": None}
    with pytest.raises(ZeroDivisionError):
        ab.python_code({"code": "result = 1 / 0"})
    with pytest.raises(ValueError, match="code must be"):
        ab.python_code({"code": "  "})
    with pytest.raises(TypeError, match="inputs must be an object"):
        ab.python_code({"code": "result = 1", "inputs": [1]})


@pytest.mark.parametrize(("params", "message"), [
    ({"url": "file:///etc/passwd"}, "http:// or https://"),
    ({"url": "http://127.0.0.1:9", "method": "BREW"}, "method must be"),
    ({"url": "http://127.0.0.1:9", "timeout_s": -1}, "timeout_s must be a positive number"),
    ({"url": "http://127.0.0.1:9", "headers": [1]}, "headers must be an object"),
])
def test_bad_http_arguments_fail_naming_the_input(params: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        ab.http_request(params)


def test_llm_chat_needs_an_endpoint_and_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="base_url and model are required"):
        ab.llm_chat({"prompt": "hi"})
    with pytest.raises(ValueError, match=r"messages .* or a prompt"):
        ab.llm_chat({"base_url": "http://127.0.0.1:9/v1", "model": "m"})


def test_secret_inputs_are_redacted_in_specs_and_run_inputs() -> None:
    assert SECRET_INPUTS == {"api_key"}
    spec = {"format": "lattice.workflow/v1", "tasks": [
        {"name": "chat", "builtin": "llm_chat", "inputs": {"api_key": {"value": "sk-1"}, "prompt": {"value": "hi"}}},
        {"name": "other", "builtin": "echo", "inputs": {"api_key": {"task": "chat", "output": "result"}}},
    ]}
    shown = redact_spec(spec)
    assert shown["tasks"][0]["inputs"] == {"api_key": {"value": REDACTED}, "prompt": {"value": "hi"}}
    assert shown["tasks"][1]["inputs"] == {"api_key": {"task": "chat", "output": "result"}}  # a reference stays
    assert spec["tasks"][0]["inputs"]["api_key"] == {"value": "sk-1"}  # the stored spec is not touched
    assert redact_run_inputs({"chat": {"api_key": {"value": "sk-2"}}}) == {"chat": {"api_key": {"value": REDACTED}}}
