"""Pick the node's container runtimes from ``--runtime docker|cri|auto`` and ``--cri-socket``.

``auto`` returns every runtime that answers: a node may run Docker and a CRI runtime side by
side. A CRI socket counts only when its CRI ``Version`` call succeeds, because Docker's own
containerd listens on ``/run/containerd/containerd.sock`` without the CRI plugin.
"""

from __future__ import annotations

import logging
import os

from podcap.config import Settings
from podcap.errors import InvalidArgument, PodcapError, Unavailable
from podcap.runtime.base import ContainerRuntime

log = logging.getLogger("podcap.runtime")

RUNTIME_NAMES = ("docker", "cri", "auto")
CRI_SOCKETS = (
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/run/k3s/containerd/containerd.sock",
)


def open_runtimes(settings: Settings) -> list[ContainerRuntime]:
    choice = (settings.runtime or "").strip().lower()
    if choice not in RUNTIME_NAMES:
        raise InvalidArgument(
            f"unknown runtime {settings.runtime!r}: use one of {', '.join(RUNTIME_NAMES)}")
    if choice == "docker":
        return [_docker(settings)]
    if choice == "cri":
        return [_cri(settings)]
    return _auto(settings)


def _docker(settings: Settings) -> ContainerRuntime:
    from podcap.runtime.docker import DockerRuntime

    return DockerRuntime(settings.docker_socket, settings.node_name)


def _cri(settings: Settings) -> ContainerRuntime:
    """The given socket, else the first usual one that answers CRI; the error says why each
    candidate was refused."""
    candidates = [settings.cri_socket] if settings.cri_socket else [
        s for s in CRI_SOCKETS if os.path.exists(s)]
    if not candidates:
        raise Unavailable(f"no CRI socket found (looked for {', '.join(CRI_SOCKETS)}); "
                          "pass --cri-socket PATH")
    failures = []
    for socket in candidates:
        runtime, why = _probe_cri(socket, settings.node_name)
        if runtime is not None:
            return runtime
        failures.append(why)
    raise Unavailable("no CRI runtime answers: " + "; ".join(failures))


def _auto(settings: Settings) -> list[ContainerRuntime]:
    runtimes: list[ContainerRuntime] = []
    tried: list[str] = []
    seen: set[str] = set()
    sockets = ([settings.cri_socket] if settings.cri_socket else []) + list(CRI_SOCKETS)
    for socket in sockets:
        path = socket.removeprefix("unix://")
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if not os.path.exists(path):
            tried.append(f"{path}: absent")
            continue
        runtime, why = _probe_cri(path, settings.node_name)
        if runtime is None:
            log.info("runtime auto: not using %s: %s", path, why)
            tried.append(why)
        else:
            runtimes.append(runtime)
    docker_why = _probe_docker(settings.docker_socket)
    if docker_why:
        log.info("runtime auto: not using Docker at %s: %s", settings.docker_socket, docker_why)
        tried.append(f"{settings.docker_socket}: {docker_why}")
    else:
        log.info("runtime auto: using Docker at %s", settings.docker_socket)
        runtimes.append(_docker(settings))
    if not runtimes:
        raise Unavailable("no container runtime answers (" + "; ".join(tried) + "); start "
                          "Docker or containerd, or pass --runtime and --cri-socket")
    return runtimes


def _probe_cri(socket: str, node: str) -> tuple[ContainerRuntime | None, str]:
    from podcap.runtime.cri import CriRuntime

    runtime = CriRuntime(socket, node, timeout=3.0)
    try:
        version = runtime.version()
    except PodcapError as exc:
        runtime.close()
        return None, exc.message  # names the socket already
    log.info("runtime: using CRI %s at %s", version, runtime.socket)
    return runtime, ""


def _probe_docker(url: str) -> str:
    """'' when a Docker engine answers at ``url``, else why not."""
    import docker

    path = url.removeprefix("unix://")
    if url.startswith("unix://") and not os.path.exists(path):
        return "absent"
    try:
        client = docker.DockerClient(base_url=url, timeout=3)
    except docker.errors.DockerException as exc:
        return str(exc)
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        return str(exc)
    finally:
        client.close()
    return ""
