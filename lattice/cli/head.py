"""Entry point of a head started in the background by ``lattice start --head``."""

from __future__ import annotations

import logging
import os
import sys

from lattice.cli.server import serve
from lattice.core.config import HeadSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raw = os.environ.pop("LATTICE_SETTINGS_JSON", None)
    settings = HeadSettings.model_validate_json(raw) if raw else HeadSettings()
    serve(settings, announce=lambda line: print(line, flush=True))
    sys.exit(0)


if __name__ == "__main__":
    main()
