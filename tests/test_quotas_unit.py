"""Quotas' rule (controller/quotas.py) on hand-made captures, fast and without a server: what
each limit adds up. tests/security/test_quotas.py proves the same limits through a real server."""

from __future__ import annotations

from dataclasses import replace

import pytest

from podcap.controller.quotas import Held, Quotas
from podcap.errors import ResourceExhausted
from podcap.model import CaptureSpec

OFF = Quotas(user_captures=0, user_disk_bytes=0, user_buffer_bytes=0, namespace_captures=0,
             namespace_disk_bytes=0, namespace_buffer_bytes=0, node_buffer_bytes=0)


def test_another_users_ring_fills_the_namespace() -> None:
    """The namespace disk quota sums every owner's captures in the namespace, not the caller's
    own: otherwise each user of a team could fill the team's disk share once more."""
    quotas = replace(OFF, namespace_disk_bytes=6_000_000)
    theirs = Held("alice", "team", "a1", CaptureSpec(file_size_mb=5, file_number=1),
                  "running", 0)
    mine = CaptureSpec(file_size_mb=2, file_number=1)
    with pytest.raises(ResourceExhausted, match="namespace team: disk.*quota_namespace_disk"):
        quotas.check("bob", "team", "a1", mine, [theirs])  # 5 MB ring + 2 MB > 6 MB
    quotas.check("bob", "elsewhere", "a1", mine, [theirs])  # another namespace: fits
