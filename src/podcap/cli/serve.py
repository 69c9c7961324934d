"""`podcap serve`, `podcap controller` and `podcap agent`: flags mapped onto
``podcap.config.Settings``.

Only the flags the user typed are passed to ``Settings``, so every field left out still comes from
its PODCAP_* environment variable (pydantic-settings) and then from its default — one source of
truth for defaults, in ``podcap.config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from podcap import limits

if TYPE_CHECKING:
    from podcap.config import Settings

Opt = typer.Option


DataDir = Annotated[Path | None, Opt(help="State, captures, certificates [PODCAP_DATA_DIR].",
                                     show_default="/var/lib/podcap")]
Listen = Annotated[str | None, Opt(help="host:port of the API and UI [PODCAP_LISTEN].",
                                   show_default="127.0.0.1:10443")]
Cert = Annotated[Path | None, Opt(help="TLS certificate (PEM) [PODCAP_CERT]; default: "
                                  "self-signed in the data dir.")]
Key = Annotated[Path | None, Opt(help="TLS private key (PEM) [PODCAP_KEY].")]
InsecureHttp = Annotated[bool | None, Opt("--insecure-http/--no-insecure-http",
                                          help="Plain HTTP, loopback only "
                                          "[PODCAP_INSECURE_HTTP].", show_default=False)]
Runtime = Annotated[str | None, Opt(help="docker | cri | auto [PODCAP_RUNTIME].",
                                    show_default="docker")]
DockerSocket = Annotated[str | None, Opt(help="Docker Engine socket [PODCAP_DOCKER_SOCKET].",
                                         show_default="unix:///var/run/docker.sock")]
CriSocket = Annotated[str | None, Opt(help="CRI socket [PODCAP_CRI_SOCKET].")]
NodeName = Annotated[str | None, Opt(help="Node name shown on workloads [PODCAP_NODE_NAME]; "
                                     "default: hostname.")]
DiskBudget = Annotated[int | None, Opt(help="Bytes all captures of this node may use on disk "
                                       "[PODCAP_DISK_BUDGET].", show_default="2 GiB")]
RetentionDays = Annotated[float | None, Opt(
    help="Delete stopped captures this many days after they stopped, fractions allowed; 0 "
    "keeps them [PODCAP_RETENTION_DAYS].", show_default="0 (keep)")]
Reclaim = Annotated[str | None, Opt(
    help="none | oldest: with oldest, a start over the node's disk budget first deletes the "
    "node's oldest stopped captures, never a running one [PODCAP_RECLAIM].",
    show_default="none")]
CapturePriority = Annotated[int | None, Opt(
    help="CPU priority (nice, -20..19) of a capture's tcpdump: below 0 runs it before the "
    "workloads when the node is saturated, so it drops less [PODCAP_CAPTURE_PRIORITY].",
    show_default=str(limits.CAPTURE_NICE))]
RingPriority = Annotated[int | None, Opt(
    help="CPU priority (nice, -20..19) of a recorder ring's tcpdump; a capture's runs above "
    "it, so a capture of the same container goes first [PODCAP_RING_PRIORITY].",
    show_default=str(limits.RING_NICE))]
LogLevel = Annotated[str | None, Opt(help="debug | info | warning | error [PODCAP_LOG_LEVEL].",
                                     show_default="info")]
LogFormat = Annotated[str | None, Opt(help="text | json: one JSON object a line, with capture "
                                      "id, workload, node and user on capture events "
                                      "[PODCAP_LOG_FORMAT].", show_default="text")]
MetricsToken = Annotated[str | None, Opt(help="Bearer token that may read /metrics "
                                         "[PODCAP_METRICS_TOKEN]; prefer the variable (flags "
                                         "show in ps). Without it: an admin's session.",
                                         show_default=False)]
MetricsListen = Annotated[str | None, Opt(help="host:port of a plain listener answering "
                                          "/metrics only, e.g. 127.0.0.1:9464 "
                                          "[PODCAP_METRICS_LISTEN]; not loopback: needs "
                                          "--metrics-token.")]
AlertmanagerToken = Annotated[str | None, Opt(
    help="Bearer token Alertmanager's webhook sends to POST /api/hooks/alertmanager "
    "[PODCAP_ALERTMANAGER_TOKEN]; prefer the variable. Without it the webhook is off.",
    show_default=False)]
AgentListen = Annotated[str | None, Opt(help="host:port where agents dial in, mutual TLS "
                                        "[PODCAP_AGENT_LISTEN].")]
JoinListen = Annotated[str | None, Opt(help="host:port where new agents join with a token "
                                       "[PODCAP_JOIN_LISTEN]; default: agent host, port "
                                       "10445.")]
DataListen = Annotated[str | None, Opt(help="host:port where agents bring downloads' bytes, "
                                       "mutual TLS [PODCAP_DATA_LISTEN]; default: agent "
                                       "host, port 10446.")]
CaCert = Annotated[Path | None, Opt(help="Cluster CA certificate (PEM) [PODCAP_CA_CERT]; "
                                    "default: generated in the data dir.")]
CaKey = Annotated[Path | None, Opt(help="Cluster CA key (PEM) [PODCAP_CA_KEY].")]
AllowedHosts = Annotated[str | None, Opt(help="Host names clients may use, comma-separated, "
                                         "* for any [PODCAP_ALLOWED_HOSTS]; default: "
                                         "localhost, 127.0.0.1, ::1, the node name and the "
                                         "listen address.")]
TrustLabels = Annotated[bool | None, Opt(
    "--trust-namespace-labels/--no-trust-namespace-labels",
    help="Docker: take a container's namespace from its io.kubernetes.pod.namespace label, "
    "which anyone who may `docker run` can set [PODCAP_TRUST_NAMESPACE_LABELS].",
    show_default="off")]
TrustedProxies = Annotated[str | None, Opt(
    help="Proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For names the client "
    "[PODCAP_TRUSTED_PROXIES]; default: none, the client is the TCP peer.",
    show_default="none")]
ApiDocs = Annotated[bool | None, Opt("--api-docs/--no-api-docs",
                                     help="Serve Swagger UI at /docs, from local files "
                                     "[PODCAP_API_DOCS].", show_default="off")]


def serve(data_dir: DataDir = None, listen: Listen = None, cert: Cert = None, key: Key = None,
          insecure_http: InsecureHttp = None, runtime: Runtime = None,
          docker_socket: DockerSocket = None, cri_socket: CriSocket = None,
          node_name: NodeName = None, disk_budget: DiskBudget = None,
          log_level: LogLevel = None, agent_listen: AgentListen = None,
          join_listen: JoinListen = None, data_listen: DataListen = None,
          ca_cert: CaCert = None, ca_key: CaKey = None, allowed_hosts: AllowedHosts = None,
          api_docs: ApiDocs = None,
          trust_namespace_labels: TrustLabels = None, log_format: LogFormat = None,
          metrics_token: MetricsToken = None, metrics_listen: MetricsListen = None,
          retention_days: RetentionDays = None, reclaim: Reclaim = None,
          trusted_proxies: TrustedProxies = None,
          alertmanager_token: AlertmanagerToken = None,
          capture_priority: CapturePriority = None, ring_priority: RingPriority = None) -> None:
    """Run the controller with an in-process agent (one host); --agent-listen also admits
    remote agents."""
    from podcap.server import serve as run

    run(_settings(locals()))


def controller(data_dir: DataDir = None, listen: Listen = None, cert: Cert = None,
               key: Key = None, insecure_http: InsecureHttp = None, log_level: LogLevel = None,
               agent_listen: Annotated[str, Opt(help="host:port where agents dial in, mutual "
                                                "TLS [PODCAP_AGENT_LISTEN].",
                                                envvar="PODCAP_AGENT_LISTEN")
                                       ] = f"0.0.0.0:{limits.AGENT_PORT_DEFAULT}",
               join_listen: JoinListen = None, data_listen: DataListen = None,
               ca_cert: CaCert = None, ca_key: CaKey = None, allowed_hosts: AllowedHosts = None,
               api_docs: ApiDocs = None, trust_namespace_labels: TrustLabels = None,
               log_format: LogFormat = None, metrics_token: MetricsToken = None,
               metrics_listen: MetricsListen = None,
               retention_days: RetentionDays = None,
               trusted_proxies: TrustedProxies = None,
               alertmanager_token: AlertmanagerToken = None) -> None:
    """Run the controller: API, UI, database and the agent listeners; no local agent."""
    from podcap.server import serve as run

    run(_settings(locals()), local_agent=False)


def agent(controller: Annotated[str | None, Opt(help="HOST:PORT of the controller's agent "
                                                "listener [PODCAP_CONTROLLER].",
                                                show_default=False)] = None,
          join_token: Annotated[str | None, Opt(help="From `podcap token create`; needed "
                                                "once [PODCAP_JOIN_TOKEN].")] = None,
          join_address: Annotated[str | None, Opt(help="HOST:PORT of the join listener "
                                                  "[PODCAP_JOIN_ADDRESS]; default: the "
                                                  "controller's host, port 10445.")] = None,
          data_dir: DataDir = None, runtime: Runtime = None,
          docker_socket: DockerSocket = None, cri_socket: CriSocket = None,
          node_name: NodeName = None, disk_budget: DiskBudget = None,
          log_level: LogLevel = None, log_format: LogFormat = None,
          reclaim: Reclaim = None, capture_priority: CapturePriority = None,
          ring_priority: RingPriority = None) -> None:
    """Run an agent on this node: it dials the controller and captures here."""
    from podcap.server import run_agent

    run_agent(_settings(locals()))


def _settings(given: dict[str, Any]) -> Settings:
    from pydantic import ValidationError

    from podcap.config import Settings

    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc
