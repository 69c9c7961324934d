"""`podcap serve`: a controller with an in-process agent, SQLite and HTTPS on one host."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import sys
from pathlib import Path

import uvicorn

from podcap.agent.manager import Agent
from podcap.agent.workloads import WorkloadView
from podcap.api.app import create_app
from podcap.config import Settings
from podcap.controller.auth import Auth
from podcap.controller.db import open_db
from podcap.controller.service import CaptureService
from podcap.errors import PodcapError
from podcap.runtime.factory import open_runtimes
from podcap.tls import ensure_self_signed
from podcap.transport.inprocess import InProcessTransport

log = logging.getLogger("podcap")


def serve(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app, cert, key = build(settings)
    except PodcapError as exc:
        sys.exit(f"podcap serve: {exc.message}")
    scheme = "http" if settings.insecure_http else "https"
    log.info("podcap listening on %s://%s (UI at /, API docs at /docs)", scheme, settings.listen)
    uvicorn.run(app, host=settings.host, port=settings.port, ssl_certfile=cert, ssl_keyfile=key,
                log_level=settings.log_level.lower(), access_log=False)


def build(settings: Settings):  # type: ignore[no-untyped-def]
    """Everything `serve` runs, without the listening socket: (app, cert path, key path)."""
    if settings.insecure_http and not _loopback(settings.host):
        raise PodcapError(f"--insecure-http is allowed on loopback only, not {settings.host}; "
                          "drop it to serve HTTPS")
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    cert = key = None
    if not settings.insecure_http:
        cert, key = (settings.cert, settings.key) if settings.cert and settings.key else \
            ensure_self_signed(data_dir, settings.node_name)
    sessions = open_db(settings.database_url, data_dir)
    auth = Auth(sessions, settings.token_idle_timeout)
    generated = auth.bootstrap_admin(settings.admin_password)
    if generated:
        print(f"\n  podcap: created user 'admin' with password: {generated}\n"
              "  (shown once; set PODCAP_ADMIN_PASSWORD on first start to choose it)\n",
              flush=True)
    agent = Agent(data_dir, WorkloadView(open_runtimes(settings)), settings.node_name,
                  _agent_id(data_dir), settings.disk_budget, settings.min_free_bytes).open()
    transport = InProcessTransport(agent)
    service = CaptureService(sessions, [transport])
    return create_app(service, auth, on_shutdown=transport.close), cert, key


def _agent_id(data_dir: Path) -> str:
    """Stable across restarts, so capture records keep pointing at the right agent."""
    path = data_dir / "agent-id"
    if not path.exists():
        path.write_text(secrets.token_hex(8))
    return path.read_text().strip()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
