"""podcap's Kubernetes manifests (deploy/kubernetes), rendered offline with `kubectl kustomize`.

Also the one reader of facts that other tests take from the manifests, so that they cannot
drift apart: the agent's capabilities (tests/image runs the agent container with exactly these)
and the containers' plain environment.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("sqlite", "postgres")


def package_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["version"]


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """The objects `kubectl apply -k deploy/kubernetes/overlays/<overlay>` would send."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl is missing: `make setup` installs Debian's kubernetes-client")
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {overlay} failed:\n{out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def find(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec(obj)["containers"] if c["name"] == name)


def agent_daemonset() -> dict[str, Any]:
    return find(render("sqlite"), "DaemonSet", "podcap-agent")


def controller_deployment() -> dict[str, Any]:
    return find(render("sqlite"), "Deployment", "podcap-controller")


def agent_capabilities() -> list[str]:
    """The capabilities the DaemonSet adds to the agent (after dropping ALL)."""
    caps = container(agent_daemonset(), "agent")["securityContext"]["capabilities"]
    assert caps["drop"] == ["ALL"], caps
    return list(caps["add"])


def plain_env(obj: dict[str, Any], name: str) -> dict[str, str]:
    """A container's environment variables that have a literal value."""
    return {e["name"]: e["value"] for e in container(obj, name).get("env", []) if "value" in e}
