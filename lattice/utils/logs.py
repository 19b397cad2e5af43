"""How a head logs: one configuration for the background head and ``--block``, text or JSON, rotated.

Every line carries a timestamp, the level and the logger; ``LATTICE_LOG_FORMAT=json`` writes one JSON
object per line instead (python-json-logger), for log shippers. A background head writes
``DATA_DIR/logs/head.log`` itself through a rotating handler (so the file cannot grow without bound);
a ``--block`` head writes to stderr, where its supervisor (systemd, a container runtime) collects it.
uvicorn's loggers are routed through the same handlers; its access log is off unless asked for.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: handlers this module installed, so that configuring again replaces them instead of doubling lines
_OURS = "_lattice_handler"


class LogSettings(BaseSettings):
    """The head's logging, from flags or ``LATTICE_LOG_*`` / ``LATTICE_ACCESS_LOG`` variables."""

    model_config = SettingsConfigDict(env_prefix="LATTICE_", extra="ignore")

    log_level: LogLevel = Field("INFO", description="lowest level written")
    log_format: LogFormat = Field("text", description="text lines or one JSON object per line")
    access_log: bool = Field(False, description="log every HTTP request (uvicorn's access log)")
    log_max_mb: int = Field(20, ge=1, description="head.log is rotated when it reaches this size")
    log_backups: int = Field(5, ge=0, description="rotated head.log files kept (head.log.1 ...)")


def formatter(fmt: LogFormat) -> logging.Formatter:
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: LogSettings, log_file: Path | None = None) -> logging.Handler:
    """Send the root logger (and uvicorn's) to ``log_file`` (rotated) or, without one, to stderr."""
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=settings.log_max_mb * 1024 * 1024, backupCount=settings.log_backups,
            encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # uvicorn.error says "Started server process" and the like at INFO: keep it at WARNING unless debugging
    logging.getLogger("uvicorn.error").setLevel("DEBUG" if settings.log_level == "DEBUG" else "WARNING")
    logging.getLogger("uvicorn.access").setLevel("INFO" if settings.access_log else "WARNING")
    return handler


__all__ = ["LOG_LEVELS", "LogFormat", "LogLevel", "LogSettings", "configure_logging", "formatter"]
