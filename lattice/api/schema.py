"""The head's OpenAPI document without a running head: ``python -m lattice.api.schema > web/openapi.json``.

The web UIs' TypeScript types are generated from this file (``npm run gen:api`` in ``web/``), and a unit
test fails when the committed copy drifts from the routes.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from lattice.api.app import create_app


def openapi_document() -> dict[str, Any]:
    def never(*_args: Any) -> Any:  # the lifespan (Ray, the store) never starts: only the routes are read
        raise RuntimeError("the schema app is not meant to serve")

    return create_app(never, never, 1).openapi()


def main() -> None:
    sys.stdout.write(json.dumps(openapi_document(), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
