"""Removal of everything a private containerd leaves outside its own process.

containerd, its shims and the CNI plugins write in places that outlive them: mounts under the
state dir, cgroup directories, the bridge device, libcni's result cache, shim sockets under
/run/containerd/s. Each function here removes one kind, touches only names derived from one
test bed, and never raises, so teardown always reaches the next step.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from podcap.runtime.base import processes

log = logging.getLogger("podcap.tests.cri")

CGROUP_ROOT = Path("/sys/fs/cgroup")
CNI_RESULTS = Path("/var/lib/cni/results")
SHIM_SOCKETS = Path("/run/containerd/s")
_MNT_DETACH = 2


def pids_with_arg(arg: str) -> list[int]:
    """PIDs whose argv contains ``arg`` exactly (e.g. our containerd socket for its shims)."""
    return [pid for pid, argv in processes() if arg.encode() in argv]


def kill_pids(pids: list[int], what: str) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            log.info("killed leftover %s pid %d", what, pid)
        except ProcessLookupError:
            pass
        except OSError as exc:
            log.warning("could not kill %s pid %d: %s", what, pid, exc)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` in this mount namespace, deepest first."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(prefix):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_all(root: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(3):
        points = mounts_under(root)
        if not points:
            return
        for point in points:
            if libc.umount2(point.encode(), _MNT_DETACH) != 0:
                log.warning("umount %s: %s", point, os.strerror(ctypes.get_errno()))


def cgroup_dirs(parent: str) -> list[Path]:
    """``parent`` (e.g. ``/podcap-cri-ab12``) in every cgroup v1 hierarchy, or the v2 tree."""
    name = parent.strip("/")
    dirs = [CGROUP_ROOT / name] if (CGROUP_ROOT / "cgroup.controllers").exists() else []
    if CGROUP_ROOT.is_dir():
        dirs += [d / name for d in CGROUP_ROOT.iterdir() if d.is_dir() and not d.is_symlink()]
    return [d for d in dirs if d.is_dir()]


def cgroup_pids(parent: str) -> list[int]:
    pids: set[int] = set()
    for top in cgroup_dirs(parent):
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except (OSError, ValueError):
                pass
    return sorted(pids)


def remove_cgroups(parent: str) -> None:
    for top in cgroup_dirs(parent):
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _rmdir(path)
        _rmdir(top)


def _rmdir(path: Path) -> None:
    for _ in range(20):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)  # the kernel frees a cgroup a moment after its last task dies
    log.warning("cgroup %s could not be removed", path)


def delete_link(name: str) -> None:
    if Path("/sys/class/net", name).exists():
        subprocess.run(["ip", "link", "delete", name], check=False, capture_output=True)


def remove_cni_results(network: str, ids: list[str] | None = None) -> None:
    """libcni caches each attachment as ``<network>-<container id>-<ifname>``; with ``ids``
    only those containers' entries go (``cni-loopback`` is shared with other runtimes)."""
    if not CNI_RESULTS.is_dir():
        return
    if ids is None:
        entries = list(CNI_RESULTS.glob(f"{network}-*"))
    else:
        entries = [e for i in ids for e in CNI_RESULTS.glob(f"{network}-{i}-*")]
    for entry in entries:
        entry.unlink(missing_ok=True)


def remove_shim_sockets(address: str, namespace: str, ids: list[str]) -> None:
    """containerd 1.6 names a shim's socket sha256("<address>/<namespace>/<id>") under
    /run/containerd/s; a shim that was killed leaves it behind."""
    for ident in ids:
        digest = hashlib.sha256(os.path.join(address, namespace, ident).encode()).hexdigest()
        (SHIM_SOCKETS / digest).unlink(missing_ok=True)


def remove_tree(root: Path) -> None:
    """Delete ``root`` only when nothing is mounted below it: rmtree would otherwise walk into
    a mounted filesystem and delete what is not ours."""
    if mounts_under(root):
        log.warning("not removing %s: mounts remain: %s", root, mounts_under(root))
        return
    shutil.rmtree(root, ignore_errors=True)


def _forward_rule(bridge: str) -> list[str]:
    return ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment",
            "podcap-cri-testbed", "-j", "ACCEPT"]


def allow_bridge_forwarding(bridge: str) -> None:
    """Docker loads br_netfilter and sets FORWARD's policy to DROP, which also drops frames
    bridged between two pods of our bridge; a node's CNI adds the same kind of accept rule."""
    remove_bridge_forwarding(bridge)
    subprocess.run(["iptables", "-w", "-I", *_forward_rule(bridge)], check=True,
                   capture_output=True)


def remove_bridge_forwarding(bridge: str) -> None:
    for _ in range(10):
        done = subprocess.run(["iptables", "-w", "-D", *_forward_rule(bridge)], check=False,
                              capture_output=True)
        if done.returncode != 0:
            return
