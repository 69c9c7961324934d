"""A workload's addresses are cached per namespace (agent/netstate/addresses.py), and the
kernel reuses a gone namespace's inode for a new one: the cache must not hand the new
container the old one's addresses (a loaded run showed a new container 172.17.0.9 where its
namespace held 172.17.0.4)."""

from __future__ import annotations

import os
import subprocess

from podcap.agent.netstate.addresses import Addresses
from podcap.model import Workload
from podcap.runtime.base import netns_inode, proc_start_time


def test_a_reused_namespace_inode_is_read_again() -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        inode = netns_inode(os.getpid())
        gone = Workload(id="a" * 64, name="gone", runtime="docker", node="n", state="running",
                        pid=os.getpid(), pid_start=proc_start_time(os.getpid()), netns=inode)
        new = Workload(id="b" * 64, name="new", runtime="docker", node="n", state="running",
                       pid=other.pid, pid_start=proc_start_time(other.pid), netns=inode)
        cache = Addresses()
        real = cache.of(gone)
        cache._cache[next(iter(cache._cache))] = (
            cache._cache[next(iter(cache._cache))][0],
            (("eth0", "10.99.99.99", 16),))  # what the gone container's namespace held
        assert cache.of(gone) == (("eth0", "10.99.99.99", 16),)  # its own entry: kept
        assert cache.of(new) == real  # the same inode, another process: read again
    finally:
        other.kill()
        other.wait()
