"""The head's settings: one pydantic-settings class, read from flags and ``LATTICE_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lattice.utils.home import default_home


class HeadSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LATTICE_", extra="ignore")

    host: str = Field("127.0.0.1", description="address to bind; loopback unless told otherwise")
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_home)
    store_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the data dir")
    ray_address: str | None = Field(None, description="join this Ray cluster instead of starting one")
    num_cpus: float | None = Field(None, description="CPUs of the embedded Ray node (default: all)")
    num_gpus: float | None = None
    object_store_mb: int = Field(512, ge=64, description="object store of the embedded Ray node")
    sandbox: str = Field("none", description="default sandbox level of tasks")
    min_sandbox: str = Field("none", description="weakest sandbox level a task may ask for")
    max_body_mb: int = Field(64, ge=1, description="largest accepted request body")
    max_output_mb: int = Field(256, ge=1, description="largest total size of one task's outputs")
    sandbox_config: str | None = Field(None, description="JSON of SandboxConfig fields: limits of sandboxed tasks")
    auth: bool = Field(True, description="require the token on every route but /health")
    io_slots: int = Field(256, ge=1, description="concurrent I/O-bound (cpu=0) tasks per node")
    playground: bool = Field(False, description="serve the Playground (workflow designer) at /playground")
    scheduling: Literal["fair", "fifo"] = Field(
        "fair", description="fair: share capacity between tenants, then runs; fifo: strict priority order")

    ssl_certfile: Path | None = Field(None, description="TLS certificate (PEM): the head serves HTTPS")
    ssl_keyfile: Path | None = Field(None, description="TLS private key (PEM) of ssl_certfile")

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'lattice.db'}"

    @property
    def token_path(self) -> Path:
        return self.data_dir / "token"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"{'https' if self.ssl_certfile else 'http'}://{host}:{self.port}"
