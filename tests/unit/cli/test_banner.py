"""The worker hint: the exact command, the address workers must use, a token placeholder (never the token)."""

from __future__ import annotations

from pathlib import Path

from lattice.cli import banner
from lattice.core.config import HeadSettings


def settings(tmp_path: Path, host: str, auth: bool = True) -> HeadSettings:
    return HeadSettings(host=host, port=8123, data_dir=tmp_path, auth=auth)


def test_all_interfaces_names_this_hosts_address_and_the_token_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(banner, "host_addresses", lambda: ["10.1.2.3", "192.168.0.9"])
    (line,) = banner.worker_hint(settings(tmp_path, "0.0.0.0"))
    assert f"lattice start --worker --addr http://10.1.2.3:8123 --token <TOKEN from {tmp_path / 'token'}>" in line
    assert "192.168.0.9" in line and "127.0.0.1" not in line


def test_loopback_says_other_machines_cannot_reach_it_and_how_to_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(banner, "host_addresses", lambda: ["10.1.2.3"])
    text = "\n".join(banner.worker_hint(settings(tmp_path, "127.0.0.1")))
    assert "workers on other machines cannot reach it" in text
    assert "--host 0.0.0.0" in text and "--host 10.1.2.3" in text
    assert f"--addr http://127.0.0.1:8123 --token <TOKEN from {tmp_path / 'token'}> --data-dir OTHER_DIR" in text


def test_a_specific_address_is_used_as_is_and_no_auth_needs_no_token(tmp_path) -> None:
    (line,) = banner.worker_hint(settings(tmp_path, "10.9.8.7", auth=False))
    assert line.endswith("lattice start --worker --addr http://10.9.8.7:8123")


def test_the_banner_never_contains_the_token(tmp_path) -> None:
    (tmp_path / "token").write_text("s3cret-token\n")
    text = "\n".join(banner.head_banner(settings(tmp_path, "0.0.0.0"), "10.0.0.1:6379", 42))
    assert "s3cret-token" not in text and "(pid 42)" in text


def test_host_addresses_are_never_loopback() -> None:
    assert all(not banner.is_loopback(address) for address in banner.host_addresses())
