"""The dependency floors in pyproject.toml are the versions the code needs (issue 13): each floor below is
tied to what the code uses, and the head refuses a Ray older than the floor at run time too."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from lattice.cli.server import MIN_RAY_VERSION, _check_ray_version

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def _floors() -> dict[str, str]:
    out = {}
    for line in PYPROJECT["project"]["dependencies"]:
        req = Requirement(line)
        (spec,) = [s for s in req.specifier if s.operator == ">="]
        out[req.name] = spec.version
    return out


def test_the_floors_that_the_code_depends_on() -> None:
    floors = _floors()
    assert floors["ray"] == ".".join(map(str, MIN_RAY_VERSION)) == "2.52"  # token auth
    assert floors["uvicorn"] == "0.35"  # ws="websockets-sansio" (lattice/cli/server.py)
    assert floors["websockets"] == "13"  # websockets.asyncio.client (lattice/client/aio.py)
    assert "alembic" in floors and "psutil" in floors


def test_the_build_backend_floor_reads_the_license_field() -> None:
    assert isinstance(PYPROJECT["project"]["license"], str)  # PEP 639 form: setuptools 77+
    assert PYPROJECT["build-system"]["requires"] == ["setuptools>=77"]


def test_a_head_refuses_a_ray_without_token_auth() -> None:
    with pytest.raises(SystemExit, match=r"Ray 2.40.0 has no token auth.*ray>=2.52"):
        _check_ray_version("2.40.0")
    _check_ray_version("2.52.0")
    _check_ray_version("3.0.0.dev0")
