"""Settings of `podcap serve`, `controller` and `agent`: every option is also a PODCAP_*
environment variable."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
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
    # Retention (controller): stopped captures whose stop time is more than this many days ago
    # are deleted (fractions allowed); 0 = keep until deleted. The sweep runs every
    # retention_sweep_s seconds.
    retention_days: float = Field(default=0.0, ge=0)
    retention_sweep_s: float = Field(default=limits.RETENTION_SWEEP_S, gt=0)
    # Reclaim (agent): "oldest" lets a start over the disk budget delete the node's oldest
    # stopped captures first; "none" refuses it.
    reclaim: Literal["none", "oldest"] = "none"
    # tcpdump's CPU priority (agent; capture/priority.py): a capture's, a recorder ring's.
    capture_priority: int = Field(default=limits.CAPTURE_NICE, ge=limits.NICE_MIN,
                                  le=limits.NICE_MAX)
    ring_priority: int = Field(default=limits.RING_NICE, ge=limits.NICE_MIN,
                               le=limits.NICE_MAX)
    token_idle_timeout: int = limits.TOKEN_IDLE_TIMEOUT_S
    token_max_age: int = limits.TOKEN_MAX_AGE_S  # absolute token lifetime
    database_url: str | None = None  # default: SQLite in data_dir
    # Host names clients may use (Host header), comma-separated; "*" allows any. Default: the
    # loopback names, the node name and the listen address (see trusted_hosts).
    allowed_hosts: str | None = None
    api_docs: bool = False  # Swagger UI at /docs, from local files
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed, comma-separated addresses
    # or CIDRs ("*": any peer, only when nothing but the proxy reaches the listener). Default:
    # none, so the client address in the throttle and the audit log is the TCP peer (uvicorn's
    # own default trusts 127.0.0.1, which lets anyone on the host choose their address).
    trusted_proxies: str | None = None
    # Docker: a container's namespace from its io.kubernetes.pod.namespace label, which anyone
    # allowed to `docker run` can set. Off: Docker containers have no namespace.
    trust_namespace_labels: bool = False
    # Quotas (controller/quotas.py); 0 turns one off. node_buffer_bytes: None = RAM / 4.
    quota_user_captures: int = limits.QUOTA_USER_CAPTURES
    quota_user_disk_bytes: int = limits.QUOTA_USER_DISK_BYTES
    quota_user_buffer_bytes: int = limits.QUOTA_USER_BUFFER_BYTES
    quota_namespace_captures: int = limits.QUOTA_NAMESPACE_CAPTURES
    quota_namespace_disk_bytes: int = limits.QUOTA_NAMESPACE_DISK_BYTES
    quota_namespace_buffer_bytes: int = limits.QUOTA_NAMESPACE_BUFFER_BYTES
    quota_node_buffer_bytes: int | None = None
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object a line (podcap/logs.py)
    # Metrics (docs/OPERATIONS.md): /metrics on the API listener answers the metrics token
    # (Authorization: Bearer) or an admin's session; metrics_listen adds a plain listener that
    # answers /metrics alone (loopback unless metrics_token is set).
    metrics_token: str | None = None
    # Flight recorders: the bearer token Alertmanager's webhook sends (http_config
    # authorization); unset, POST /api/hooks/alertmanager answers 503.
    alertmanager_token: str | None = None
    metrics_listen: str | None = None  # HOST:PORT, e.g. 127.0.0.1:9464
    # Cluster (docs/CLUSTER.md). Controller side: where agents dial in; None = no remote agents.
    agent_listen: str | None = None  # mutual TLS; `podcap controller` defaults to 0.0.0.0:10444
    join_listen: str | None = None  # default: agent_listen's host, port 10445
    data_listen: str | None = None  # downloads' bytes; default: agent_listen's host, port 10446
    ca_cert: Path | None = None  # the cluster CA; default: generated into data_dir
    ca_key: Path | None = None
    # Several replicas on PostgreSQL (controller/leader.py): the background work's lease; the
    # leader renews it every third of it, another replica takes over after it.
    lease_ttl_s: float = Field(default=limits.LEASE_TTL_S, ge=1.0, le=120.0)
    # Agent side (`podcap agent`).
    # HOST:PORT of the controller's agent listener; several replicas: HOST:PORT,HOST:PORT, or
    # one name that resolves to each of them (a headless Service), re-resolved (agent/uplinks)
    controller: str | None = None
    join_token: str | None = None  # needed once; afterwards the certificate in data_dir
    join_address: str | None = None  # default: controller's host, port 10445

    @field_validator("metrics_token", "metrics_listen", "alertmanager_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """PODCAP_METRICS_TOKEN= (an empty variable, e.g. from a template) means: none."""
        return None if value == "" else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        if value is None or value == "":
            return None
        entries = [e.strip() for e in str(value).split(",") if e.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"trusted proxy {entry[:64]!r} is not an IP address or a "
                                 "CIDR (e.g. 10.0.0.5 or 10.244.0.0/16)") from None
        return ",".join(entries) or None

    @property
    def proxies(self) -> list[str]:
        """The trusted proxies as uvicorn takes them ([] when none)."""
        return self.trusted_proxies.split(",") if self.trusted_proxies else []

    @property
    def join_listen_address(self) -> str | None:
        if self.join_listen or not self.agent_listen:
            return self.join_listen
        return f"{self.agent_listen.rsplit(':', 1)[0]}:{limits.JOIN_PORT_DEFAULT}"

    @property
    def data_listen_address(self) -> str | None:
        if self.data_listen or not self.agent_listen:
            return self.data_listen
        return f"{self.agent_listen.rsplit(':', 1)[0]}:{limits.DATA_PORT_DEFAULT}"

    @property
    def join_dial_address(self) -> str:
        if self.join_address:
            return self.join_address
        if not self.controller:
            raise ValueError("no controller address")
        first = self.controller.split(",")[0].strip()
        return f"{first.rsplit(':', 1)[0]}:{limits.JOIN_PORT_DEFAULT}"

    @property
    def trusted_hosts(self) -> list[str]:
        if self.allowed_hosts:
            return [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]
        names = ["localhost", "127.0.0.1", "::1", self.node_name]
        if self.host not in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
            names.append(self.host)
        return names

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])
