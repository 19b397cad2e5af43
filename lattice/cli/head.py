"""Entry point of a head started in the background by ``lattice start --head``.

It writes its own log, ``DATA_DIR/logs/head.log`` (rotated; see :mod:`lattice.utils.logs`); its
stdout and stderr (a crash's traceback, what a library prints) go to ``head.out`` beside it.
"""

from __future__ import annotations

import logging
import os
import sys

from lattice.cli.banner import log_paths
from lattice.cli.server import serve
from lattice.core.config import HeadSettings
from lattice.utils.logs import LogSettings, configure_logging


def main() -> None:
    raw = os.environ.pop("LATTICE_SETTINGS_JSON", None)
    settings = HeadSettings.model_validate_json(raw) if raw else HeadSettings()
    logs = LogSettings()
    configure_logging(logs, log_paths(settings.data_dir)[0])
    announce = logging.getLogger("lattice.head").info
    serve(settings, announce=announce, access_log=logs.access_log)
    sys.exit(0)


if __name__ == "__main__":
    main()
