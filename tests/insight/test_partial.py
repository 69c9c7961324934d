"""Partials merged file by file (insight/partial.py), on hand-made rows: fast, no pcap."""

from __future__ import annotations

import socket

from podcap.insight.partial import Partial

KEY = (6, socket.inet_aton("10.0.0.1"), 5555, socket.inet_aton("10.0.0.2"), 80)


def part(first: float, last: float) -> Partial:
    return Partial(packets=2, bytes=120, first=first, last=last,
                   conversations={KEY: [1, 60, 1, 60, first, last]})


def test_merged_partials_keep_a_conversations_earliest_first_and_latest_last() -> None:
    """A conversation that spans two ring files began in the older one: its "first seen" is
    that file's, whichever order the cache hands the partials over in."""
    for order in ((part(100.0, 110.0), part(200.0, 210.0)),
                  (part(200.0, 210.0), part(100.0, 110.0))):
        merged = Partial()
        for p in order:
            merged.merge(p)
        assert merged.conversations[KEY] == [2, 120, 2, 120, 100.0, 210.0]
        assert (merged.first, merged.last, merged.packets) == (100.0, 210.0, 4)
