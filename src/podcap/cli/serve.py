"""`podcap serve`: flags mapped onto ``podcap.config.Settings``.

Only the flags the user typed are passed to ``Settings``, so every field left out still comes from
its PODCAP_* environment variable (pydantic-settings) and then from its default — one source of
truth for defaults, in ``podcap.config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

Opt = typer.Option


def serve(
    data_dir: Annotated[Path | None, Opt(help="State, captures and tls.crt [PODCAP_DATA_DIR].",
                                         show_default="/var/lib/podcap")] = None,
    listen: Annotated[str | None, Opt(help="host:port to listen on [PODCAP_LISTEN].",
                                      show_default="127.0.0.1:10443")] = None,
    cert: Annotated[Path | None, Opt(help="TLS certificate (PEM) [PODCAP_CERT]; "
                                     "default: self-signed in the data dir.")] = None,
    key: Annotated[Path | None, Opt(help="TLS private key (PEM) [PODCAP_KEY].")] = None,
    insecure_http: Annotated[bool | None, Opt(
        "--insecure-http/--no-insecure-http",
        help="Plain HTTP, loopback only [PODCAP_INSECURE_HTTP].", show_default=False)] = None,
    runtime: Annotated[str | None, Opt(help="docker | cri | auto [PODCAP_RUNTIME].",
                                       show_default="docker")] = None,
    docker_socket: Annotated[str | None, Opt(help="Docker Engine socket [PODCAP_DOCKER_SOCKET].",
                                             show_default="unix:///var/run/docker.sock")] = None,
    cri_socket: Annotated[str | None, Opt(help="CRI socket [PODCAP_CRI_SOCKET].")] = None,
    node_name: Annotated[str | None, Opt(help="Node name shown on workloads "
                                         "[PODCAP_NODE_NAME]; default: hostname.")] = None,
    disk_budget: Annotated[int | None, Opt(help="Bytes all captures may use on disk "
                                           "[PODCAP_DISK_BUDGET].",
                                           show_default="2 GiB")] = None,
    log_level: Annotated[str | None, Opt(help="debug | info | warning | error "
                                         "[PODCAP_LOG_LEVEL].", show_default="info")] = None,
) -> None:
    """Run the controller with an in-process agent (one Docker host)."""
    from pydantic import ValidationError

    from podcap.config import Settings

    given: dict[str, Any] = {k: v for k, v in {
        "data_dir": data_dir, "listen": listen, "cert": cert, "key": key,
        "insecure_http": insecure_http, "runtime": runtime, "docker_socket": docker_socket,
        "cri_socket": cri_socket, "node_name": node_name, "disk_budget": disk_budget,
        "log_level": log_level,
    }.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc

    from podcap.server import serve as run_server  # the server stack loads only for `serve`

    run_server(settings)
