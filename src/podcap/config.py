"""Settings of `podcap serve`: every option is also a PODCAP_* environment variable."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from podcap import limits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODCAP_", extra="ignore")

    data_dir: Path = Path("/var/lib/podcap")
    listen: str = "127.0.0.1:10443"  # NeuVector's port
    cert: Path | None = None
    key: Path | None = None
    insecure_http: bool = False  # plain HTTP, allowed on loopback only
    admin_password: str | None = None  # first start only; generated and printed when unset
    runtime: str = "docker"  # docker | cri | auto
    docker_socket: str = "unix:///var/run/docker.sock"
    cri_socket: str | None = None
    node_name: str = Field(default_factory=socket.gethostname)
    disk_budget: int = limits.DISK_BUDGET_DEFAULT
    min_free_bytes: int = limits.MIN_FREE_BYTES_DEFAULT
    token_idle_timeout: int = limits.TOKEN_IDLE_TIMEOUT_S
    database_url: str | None = None  # default: SQLite in data_dir
    log_level: str = "info"

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])
