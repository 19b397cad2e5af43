"""Answers already serialized, for the routes on the per-task path.

A route that returns a model has FastAPI validate it against its ``response_model`` again and then
serialize it (a fifth of the submit route's CPU, measured on the no-op round trip); a model built by the
route is valid by construction, so the hot routes serialize it once here and return the bytes. The route
keeps its ``response_model``, so the OpenAPI document is the same.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

__all__ = ["json_response"]


def json_response(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``model`` as the JSON body FastAPI would have written for it (its fields by alias, ``None`` included)."""
    return Response(model.model_dump_json(by_alias=True), status_code, headers, media_type="application/json")
