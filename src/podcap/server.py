"""The three ways podcap runs, assembled from the same parts.

- ``podcap serve``: a controller with an in-process agent, SQLite and HTTPS on one host; it
  accepts remote agents too when given ``--agent-listen``.
- ``podcap controller``: API, UI, database and the agent listeners; no local agent.
- ``podcap agent``: one per node; dials the controller and captures on its node.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from podcap import limits
from podcap.agent.manager import Agent
from podcap.agent.workloads import WorkloadView
from podcap.api.app import create_app
from podcap.api.metrics.access import check_access
from podcap.api.metrics.leader import LeaderCollector
from podcap.api.metrics.listener import serve_separately
from podcap.api.metrics.recorders import RecorderCollector
from podcap.api.protocol import HeadDeadlineH11Protocol
from podcap.capture import tcpdump
from podcap.capture.priority import Priorities
from podcap.config import Settings
from podcap.controller.agents import AgentRegistry
from podcap.controller.audit import Audit
from podcap.controller.auth import Auth
from podcap.controller.db import open_db
from podcap.controller.groups import GroupService
from podcap.controller.join_tokens import JoinTokens
from podcap.controller.leader import Solo, open_leader
from podcap.controller.quotas import Quotas, default_node_buffer
from podcap.controller.recorders import RecorderService
from podcap.controller.retention import Policy, RetentionSweeper
from podcap.controller.service import CaptureService
from podcap.controller.shared_ca import shared_ca
from podcap.controller.sqlite_lock import hold_single_controller
from podcap.errors import PodcapError
from podcap.logs import setup as setup_logging
from podcap.logs import uvicorn_log_config
from podcap.pki.ca import ClusterCA
from podcap.runtime.factory import open_runtimes
from podcap.tls import ensure_self_signed, is_loopback
from podcap.transport.base import AgentTransport
from podcap.transport.data.listener import DataListener
from podcap.transport.grpc.gateway import Gateway
from podcap.transport.grpc.gateway_server import start_gateway
from podcap.transport.grpc.join import Identity, join
from podcap.transport.grpc.uplinks import Uplinks

log = logging.getLogger("podcap")


def serve(settings: Settings, *, local_agent: bool = True) -> None:
    _logging(settings)
    _few_malloc_arenas()
    role = "serve" if local_agent else "controller"
    try:
        app, cert, key = build(settings, local_agent=local_agent)
    except PodcapError as exc:
        sys.exit(f"podcap {role}: {exc.message}")
    sys.setswitchinterval(limits.GIL_SWITCH_S)  # the event loop waits less behind busy threads
    _freeze_startup_objects()
    scheme = "http" if settings.insecure_http else "https"
    log.info("podcap listening on %s://%s (UI at /%s)", scheme, settings.listen,
             ", API docs at /docs" if settings.api_docs else "")
    if settings.proxies:
        log.info("client addresses from X-Forwarded-For of %s", ", ".join(settings.proxies))
    uvicorn.run(app, host=settings.host, port=settings.port, ssl_certfile=cert, ssl_keyfile=key,
                log_level=settings.log_level.lower(), access_log=False,
                http=HeadDeadlineH11Protocol, timeout_keep_alive=limits.KEEP_ALIVE_S,
                h11_max_incomplete_event_size=limits.HEADER_MAX_BYTES,
                log_config=uvicorn_log_config(settings.log_format),
                # Forwarded headers only from the proxies listed (issue 24): uvicorn's default
                # believes any X-Forwarded-For from 127.0.0.1.
                proxy_headers=bool(settings.proxies),
                forwarded_allow_ips=settings.proxies or None)


def build(settings: Settings, *, local_agent: bool = True
          ) -> tuple[FastAPI, Path | None, Path | None]:
    """Everything `serve` runs, without the listening socket: (app, cert path, key path)."""
    if settings.insecure_http and not is_loopback(settings.host):
        raise PodcapError(f"--insecure-http is allowed on loopback only, not {settings.host}; "
                          "drop it to serve HTTPS")
    check_access(settings.metrics_token, settings.metrics_listen)
    data_dir = _data_dir(settings)
    cert = key = None
    if not settings.insecure_http:
        cert, key = (settings.cert, settings.key) if settings.cert and settings.key else \
            ensure_self_signed(data_dir, settings.node_name, settings.host)
    hold_single_controller(settings.database_url, data_dir)  # SQLite: one controller only
    sessions = open_db(settings.database_url, data_dir)
    leader = open_leader(sessions, settings.lease_ttl_s)
    audit = Audit(sessions, data_dir / "audit.jsonl")
    auth = Auth(sessions, settings.token_idle_timeout, settings.token_max_age, audit)
    generated = auth.bootstrap_admin(settings.admin_password)
    if generated:
        print(f"\n  podcap: created user 'admin' with password: {generated}\n"
              "  (shown once; set PODCAP_ADMIN_PASSWORD on first start to choose it)\n",
              flush=True)
    # The agent is its own transport (agent/manager.py): the controller is handed it as it is.
    local: AgentTransport | None = build_agent(settings, _agent_id(data_dir)) if local_agent \
        else None
    registry = AgentRegistry(sessions, local)
    service = CaptureService(sessions, registry, audit, quotas_of(settings),
                             settings.trust_namespace_labels,
                             tcpdump.write_empty_pcap(data_dir / "empty-sll2.pcap"))
    stops: list[Callable[[], object]] = []
    starts: list[Callable[[], object]] = []
    tokens = None
    if settings.agent_listen:
        ca = ClusterCA.load_or_create(data_dir, settings.ca_cert, settings.ca_key) \
            if isinstance(leader, Solo) else \
            shared_ca(sessions, data_dir, settings.ca_cert, settings.ca_key)  # replicas share
        tokens = JoinTokens(sessions, ca.fingerprint)
        data = DataListener(registry.uploads, registry.rejects, ca,
                            settings.data_listen_address or "")
        starts.append(data.start)  # on the HTTP server's loop: no thread between the two
        stops.append(data.close)
        grpc_server = start_gateway(Gateway(registry, tokens, ca, audit), settings.agent_listen,
                                    settings.join_listen_address)
        stops.append(lambda: grpc_server.stop(grace=1))
    groups = GroupService(service, sessions, leader=leader)
    stops.append(groups.close)
    recorders = RecorderService(service, sessions, leader=leader)
    stops.append(recorders.close)
    if settings.retention_days:
        stops.append(RetentionSweeper(service, settings.retention_days,
                                      settings.retention_sweep_s, leader=leader).start().stop)
    stops.append(leader.close)  # after the loops: a graceful stop hands the lease over now
    stops.append(service.close)

    def shutdown() -> None:
        for stop in stops:
            stop()

    def startup() -> None:
        for start in starts:
            start()

    app = create_app(service, auth, on_startup=startup, on_shutdown=shutdown,
                     allowed_hosts=settings.trusted_hosts, api_docs=settings.api_docs,
                     metrics_token=settings.metrics_token)
    if settings.metrics_listen:
        stops.insert(0, serve_separately(app.state.metrics, settings.metrics_listen,
                                         settings.metrics_token, settings.trusted_hosts))
    app.state.join_tokens = tokens
    app.state.groups = groups
    app.state.leader = leader
    app.state.metrics.add(LeaderCollector(leader))
    app.state.recorders = recorders
    app.state.alertmanager_token = settings.alertmanager_token
    app.state.metrics.add(RecorderCollector(recorders))
    app.state.retention = Policy(settings.retention_days,
                                 settings.reclaim if local_agent else None)
    return app, cert, key


def quotas_of(settings: Settings) -> Quotas:
    node = settings.quota_node_buffer_bytes
    return Quotas(settings.quota_user_captures, settings.quota_user_disk_bytes,
                  settings.quota_user_buffer_bytes, settings.quota_namespace_captures,
                  settings.quota_namespace_disk_bytes, settings.quota_namespace_buffer_bytes,
                  default_node_buffer() if node is None else node)


def build_agent(settings: Settings, agent_id: str,
                chunk: int = limits.DOWNLOAD_CHUNK_BYTES) -> Agent:
    return Agent(settings.data_dir, WorkloadView(open_runtimes(settings)), settings.node_name,
                 agent_id, settings.disk_budget, settings.min_free_bytes,
                 reclaim=settings.reclaim, chunk=chunk,
                 priorities=Priorities(settings.capture_priority, settings.ring_priority)).open()


def run_agent(settings: Settings) -> None:
    """`podcap agent`: join once (token), then serve the controller until SIGTERM/SIGINT.
    A graceful stop ends running captures (reason "agent shut down"); SIGKILL leaves them
    running, and the next start re-adopts them."""
    _logging(settings)
    if not settings.controller:
        sys.exit("podcap agent: --controller HOST:PORT is required (the controller's agent "
                 "listener, port 10444 by default)")
    try:
        data_dir = _data_dir(settings)
        identity = Identity.load(data_dir)
        if identity is None:
            if not settings.join_token:
                sys.exit("podcap agent: this node has not joined yet: pass --join-token (from "
                         "`podcap token create`)")
            identity = join(settings.join_dial_address, settings.join_token, settings.node_name)
            identity.save(data_dir)
            log.info("joined as agent %s", identity.agent_id)
        elif settings.join_token:
            log.info("already joined as agent %s; --join-token not needed", identity.agent_id)
        # Read in gRPC-message-sized blocks: the uplink then sends them without a copy.
        agent = build_agent(settings, identity.agent_id, chunk=limits.UPLOAD_CHUNK_BYTES)
    except PodcapError as exc:
        sys.exit(f"podcap agent: {exc.message}")
    uplink = Uplinks(agent, settings.controller, identity, feed=agent.feed)  # every replica
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: uplink.stop())
    log.info("agent %s on node %s dialling %s", identity.agent_id, settings.node_name,
             settings.controller)
    try:
        uplink.run()
    finally:
        agent.close()
        log.info("agent stopped")


def _freeze_startup_objects() -> None:
    """What the imports and the app made lives as long as the process: out of the cyclic
    collector's sight (``gc.freeze``), so a full collection no longer walks those 160,000
    objects. With 500 nodes connected one came every 10-20 s and held the interpreter for
    50-435 ms (280,000 objects, a loaded machine), whichever request it landed on (bench
    figure 11's p99); after, 21-54 ms (120,000) on the same machine."""
    gc.collect()
    gc.freeze()


def _few_malloc_arenas() -> None:
    """Download chunks are allocated on one thread and freed on another; with glibc's
    default of 8 arenas per core that memory stays with the process (measured: RSS +39 MB per
    1 GB download through the controller; +1 MB with 2 arenas, BENCHMARKS.md)."""
    try:
        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _logging(settings: Settings) -> None:
    setup_logging(settings.log_level, settings.log_format)


def _data_dir(settings: Settings) -> Path:
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    return data_dir


def _agent_id(data_dir: Path) -> str:
    """Stable across restarts, so capture records keep pointing at the right agent."""
    path = data_dir / "agent-id"
    if not path.exists():
        path.write_text(secrets.token_hex(8))
    return path.read_text().strip()
