"""The web UIs: the Board at ``/board`` (every head) and the Playground at ``/playground`` (``--playground``).

Both are static builds of ``web/`` (React + Vite) shipped inside the package under ``lattice/web/dist``,
so a head installed with pip serves them without Node. The HTML, scripts and styles load without the
token (they hold nothing secret); the page asks for the token and sends it on every ``/api/v1`` call
and WebSocket. Nothing here reaches a third party: every asset comes from this head.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse

from lattice.api.errors import HTTPError

router = APIRouter(include_in_schema=False)
DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
# The pages may load only what this head serves (no CDN, no third-party request): fetches and the run
# WebSocket go to the host the page came from, and nowhere else.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self' ws://{host} wss://{host}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,300}$")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png",
          ".json": "application/json", ".woff2": "font/woff2", ".map": "application/json"}


def _page(name: str, request: Request) -> FileResponse:
    path = DIST / f"{name}.html"
    if not path.is_file():
        raise HTTPError(404, "not_found", f"the {name} UI is not built into this installation", "path",
                        "build it with 'npm ci && npm run build' in web/, or install a released wheel")
    host = request.headers.get("host", "")
    csp = _CSP.format(host=host if _HOST_RE.match(host) else "127.0.0.1")
    return FileResponse(path, media_type="text/html",
                        headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"})


@router.get("/board")
async def board(request: Request) -> FileResponse:
    return _page("board", request)


@router.get("/board/")
async def board_slash() -> RedirectResponse:
    return RedirectResponse("/board")


@router.get("/playground")
async def playground(request: Request) -> FileResponse:
    if not request.app.state.head.settings.playground:
        raise HTTPError(404, "not_found", "the Playground is off on this head", "path",
                        "start the head with 'lattice start --head --playground'")
    return _page("playground", request)


@router.get("/ui/assets/{name}")
async def asset(name: str) -> FileResponse:
    """A built script, style sheet or image; names carry a content hash, so they are cached for good."""
    root = (DIST / "assets").resolve()
    path = (root / name).resolve()
    if path.parent != root or not path.is_file():
        raise HTTPError(404, "not_found", f"no asset {name!r}", "path", "reload the page: the UI was rebuilt")
    return FileResponse(path, media_type=_TYPES.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})
