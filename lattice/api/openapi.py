"""The OpenAPI document's security and the ``/docs`` page, served from the head itself.

* **Security.** The head checks the token itself (:func:`lattice.api.deps.require_token`);
  ``lattice.api.deps.token_required`` is that check as a dependency that also declares the requirement
  for OpenAPI (``bearer``, this scheme, for routes that check in their own way), so the document marks
  each protected route with an HTTP bearer scheme (and ``/health`` with none), and "Authorize" in
  ``/docs`` sends the token.
  With ``auto_error=False`` it never answers for itself: the head's own 401 body stays the one answer.
* **Bodies a route reads itself.** A route that parses its JSON body off the event loop (``POST
  /workflows``: a 100,000-task spec is seconds of validation) takes the raw request, so FastAPI does
  not see its model; :func:`json_body` declares the body for the document and :func:`document_models`
  puts the model's schema among the components, where a declared body's would be.
* **Swagger UI.** FastAPI's ``/docs`` loads Swagger UI from a CDN and is blank without one. The
  assets here come from the ``fastapi-swagger`` package, which ships the Swagger UI 5 distribution
  (5 reads OpenAPI 3.1, the version FastAPI writes; the 4.x of ``swagger-ui-bundle`` does not), and
  are served under ``/docs/assets/``, so the page makes no request to another origin.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from fastapi import FastAPI, Response
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.models import OpenAPI
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from lattice.api.errors import HTTPError

__all__ = ["ASSETS", "BEARER_SCHEME", "bearer", "document_models", "install_docs", "json_body"]

#: the HTTP bearer scheme of the OpenAPI document (``lattice.api.deps.token_required`` declares the same one)
BEARER_SCHEME = {
    "auto_error": False, "scheme_name": "bearer", "bearerFormat": "token",
    "description": "The head's token: in its data dir (`~/.lattice/token` by default) or `$LATTICE_TOKEN`."}
bearer = HTTPBearer(**BEARER_SCHEME)

#: the Swagger UI files served under /docs/assets/, and their media types
ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css",
          "favicon-32x32.png": "image/png"}
_PACKAGE = "fastapi_swagger.resources"


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files(_PACKAGE).joinpath(name).read_bytes()


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra`` for a required JSON body of ``model`` that the route parses itself."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def document_models(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add ``models`` (and the models they use) to the OpenAPI document's components, written as FastAPI
    writes a declared body's (through its ``OpenAPI`` model, without nulls)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            _, schemas = models_json_schema([(model, "validation") for model in models],
                                            ref_template="#/components/schemas/{model}")
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in schemas.get("$defs", {}).items():
                components.setdefault(name, schema)
            app.openapi_schema = jsonable_encoder(OpenAPI(**document), by_alias=True, exclude_none=True)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_docs(app: FastAPI, docs_url: str = "/docs") -> None:
    """``/docs`` and its assets; create the app with ``docs_url=None`` (and ``redoc_url=None``: ReDoc is CDN-only)."""
    assets = f"{docs_url}/assets"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js", swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            # no validator badge: it would send the document to validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True})

    @app.get(assets + "/{name}", include_in_schema=False)
    async def swagger_asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPError(404, "not_found", f"no docs asset {name!r}", "name", f"one of {sorted(ASSETS)}")
        return Response(_asset(name), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})
