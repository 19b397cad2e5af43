"""Process identity (pid + start time) and the head's log configuration."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from lattice.utils.logs import LogSettings, configure_logging
from lattice.utils.procs import ProcessIdentity, group_is_ours, recorded_identity


def test_an_identity_is_alive_only_for_the_process_that_started_then() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        identity = ProcessIdentity.of(proc.pid)
        assert identity.alive() and group_is_ours(proc.pid, identity.create_time)
        reused = ProcessIdentity(proc.pid, identity.create_time - 3600)  # the pid, an hour-old start time
        assert not reused.alive() and not group_is_ours(proc.pid, reused.create_time)
    finally:
        proc.kill()
        proc.wait()
    assert not identity.alive()
    assert recorded_identity({"pid": 5}) is None  # no start time recorded: cannot prove it, not trusted


def _reset_root() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_lattice_handler", False)]:
        root.removeHandler(handler)
        handler.close()


def test_text_lines_have_timestamps_and_the_file_rotates(tmp_path) -> None:
    path = tmp_path / "logs" / "head.log"
    try:
        configure_logging(LogSettings(log_level="INFO", log_max_mb=1, log_backups=2), path)
        log = logging.getLogger("lattice.test")
        log.debug("hidden")
        for i in range(3000):
            log.info("line %d %s", i, "x" * 500)
    finally:
        _reset_root()
    assert (tmp_path / "logs" / "head.log.1").exists() and not (tmp_path / "logs" / "head.log.3").exists()
    lines = path.read_text().splitlines()
    assert lines and all(line[:4].isdigit() and " INFO lattice.test: line " in line for line in lines)
    assert "hidden" not in path.read_text()


def test_json_lines_parse_and_configuring_twice_does_not_double_lines(tmp_path) -> None:
    path = tmp_path / "head.log"
    try:
        configure_logging(LogSettings(log_format="json"), path)
        configure_logging(LogSettings(log_format="json", log_level="DEBUG"), path)
        logging.getLogger("lattice.test").debug("hello %s", "there")
    finally:
        _reset_root()
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert record["message"] == "hello there" and record["level"] == "DEBUG" and record["logger"] == "lattice.test"
    assert record["time"]


def test_the_access_log_is_off_unless_asked(tmp_path) -> None:
    try:
        configure_logging(LogSettings(), tmp_path / "a.log")
        assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
        configure_logging(LogSettings(access_log=True), tmp_path / "a.log")
        assert logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
    finally:
        _reset_root()
