"""Where a head on the user's own Ray (``--ray-address``) finds that cluster's token: Ray's CLI order."""

from __future__ import annotations

from pathlib import Path

import pytest

from lattice.executor.ray_process import user_ray_token


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_no_token_anywhere_means_none(home: Path) -> None:
    assert user_ray_token() is None


def test_the_default_file_is_found(home: Path) -> None:
    write(home / ".ray" / "auth_token", "from-home\n")
    assert user_ray_token() == "from-home"


def test_the_path_variable_comes_before_the_default_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(home / ".ray" / "auth_token", "from-home")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(write(home / "elsewhere", "from-path")))
    assert user_ray_token() == "from-path"


def test_the_token_variable_comes_first(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(home / ".ray" / "auth_token", "from-home")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(write(home / "elsewhere", "from-path")))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert user_ray_token() == "from-env"


def test_auth_disabled_by_the_user_sends_none(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(home / ".ray" / "auth_token", "from-home")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert user_ray_token() is None


def test_an_empty_file_is_no_token(home: Path) -> None:
    write(home / ".ray" / "auth_token", "\n")
    assert user_ray_token() is None
