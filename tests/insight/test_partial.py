"""Partials (insight/partial.py): merging two files' counters, the bounds that keep a table
small, the timeline's buckets, and the JSON a cache file holds. Exact numbers throughout."""

from __future__ import annotations

import json
import socket

import pytest

from podcap import limits
from podcap.insight.partial import Partial, ntop

A4, B4 = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
A6 = socket.inet_pton(socket.AF_INET6, "fd00::1")
B6 = socket.inet_pton(socket.AF_INET6, "fd00::2")
TCP = (6, A4, 80, B4, 40000)
UDP6 = (17, A6, 53, B6, 5353)


def earlier() -> Partial:
    return Partial(packets=3, bytes=300, first=10.0, last=12.0,
                   conversations={TCP: [2, 200, 1, 100, 10.0, 12.0]},
                   untracked_packets=1, untracked_bytes=11,
                   links={0x0800: [3, 300]}, ip_protocols={6: [3, 300]},
                   services={(6, 80): [3, 300]}, dns={"a.example": [1, 0]},
                   tls={"a.example": 1}, timeline={10: [2, 200], 12: [1, 100]})


def later() -> Partial:
    return Partial(packets=4, bytes=400, first=11.0, last=20.0,
                   conversations={TCP: [1, 50, 2, 70, 11.0, 20.0],
                                  UDP6: [1, 80, 0, 0, 15.0, 15.0]},
                   untracked_packets=2, untracked_bytes=22,
                   links={0x0800: [3, 320], 0x86DD: [1, 80]}, ip_protocols={6: [3, 320],
                                                                             17: [1, 80]},
                   services={(6, 80): [3, 320], (17, 53): [1, 80]},
                   dns={"a.example": [0, 1], "b.example": [1, 0]},
                   tls={"a.example": 2, "b.example": 1}, timeline={12: [1, 10], 20: [3, 390]})


def test_merge_adds_every_counter() -> None:
    part = earlier()
    part.merge(later())
    assert (part.packets, part.bytes, part.first, part.last) == (7, 700, 10.0, 20.0)
    assert part.conversations == {TCP: [3, 250, 3, 170, 10.0, 20.0],
                                  UDP6: [1, 80, 0, 0, 15.0, 15.0]}
    assert (part.untracked_packets, part.untracked_bytes) == (3, 33)
    assert part.links == {0x0800: [6, 620], 0x86DD: [1, 80]}
    assert part.ip_protocols == {6: [6, 620], 17: [1, 80]}
    assert part.services == {(6, 80): [6, 620], (17, 53): [1, 80]}
    assert part.dns == {"a.example": [1, 1], "b.example": [1, 0]}
    assert part.tls == {"a.example": 3, "b.example": 1}
    assert part.timeline == {10: [2, 200], 12: [2, 110], 20: [3, 390]}
    assert part.step == 1


def test_merge_keeps_the_earliest_first_and_the_latest_last_whatever_the_order() -> None:
    part = later()
    part.merge(earlier())
    assert (part.first, part.last) == (10.0, 20.0)
    assert part.conversations[TCP][4:] == [10.0, 20.0]
    part = Partial()
    part.merge(Partial(first=5.0, last=6.0))
    assert (part.first, part.last) == (5.0, 6.0)
    part.merge(Partial())  # nothing seen: nothing changes
    assert (part.first, part.last) == (5.0, 6.0)


def test_merge_does_not_share_rows_with_the_other_partial() -> None:
    part, other = Partial(), later()
    part.merge(other)
    part.merge(earlier())
    assert other.conversations[TCP] == [1, 50, 2, 70, 11.0, 20.0]
    assert other.links[0x0800] == [3, 320] and other.dns["a.example"] == [0, 1]


def test_a_full_conversation_table_counts_new_ones_as_untracked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "INSIGHT_CONVERSATIONS_MAX", 1)
    part = earlier()
    # A new conversation (both directions counted) comes before a known one, which still grows.
    other = Partial(conversations={UDP6: [2, 80, 3, 900, 15.0, 15.0],
                                   TCP: [1, 50, 2, 70, 11.0, 20.0]})
    part.merge(other)
    assert part.conversations == {TCP: [3, 250, 3, 170, 10.0, 20.0]}
    assert (part.untracked_packets, part.untracked_bytes) == (1 + 2 + 3, 11 + 80 + 900)


def test_full_services_names_and_tls_tables_take_no_new_row(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "INSIGHT_SERVICES_MAX", 1)
    monkeypatch.setattr(limits, "INSIGHT_NAMES_MAX", 1)
    part = earlier()
    # New rows first: the known rows after them are still added to.
    other = later()
    other.services = {(17, 53): [1, 80], (6, 80): [3, 320]}
    other.dns = {"b.example": [1, 0], "a.example": [0, 1]}
    other.tls = {"b.example": 1, "a.example": 2}
    part.merge(other)
    assert part.services == {(6, 80): [6, 620]}
    assert part.dns == {"a.example": [1, 1]}
    assert part.tls == {"a.example": 3}
    # Links and protocols are few by nature: never bounded.
    assert len(part.links) == 2 and len(part.ip_protocols) == 2


def test_the_bounds_allow_exactly_their_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "INSIGHT_CONVERSATIONS_MAX", 2)
    monkeypatch.setattr(limits, "INSIGHT_SERVICES_MAX", 2)
    monkeypatch.setattr(limits, "INSIGHT_NAMES_MAX", 2)
    part = earlier()
    part.merge(later())
    assert len(part.conversations) == len(part.services) == len(part.dns) == 2
    assert len(part.tls) == 2 and (part.untracked_packets, part.untracked_bytes) == (3, 33)


def test_rebucket_adds_seconds_into_wider_buckets() -> None:
    part = Partial(timeline={0: [1, 10], 1: [2, 20], 5: [4, 40], 7: [8, 80]})
    part.rebucket(1)
    assert part.timeline == {0: [1, 10], 1: [2, 20], 5: [4, 40], 7: [8, 80]}
    part.rebucket(4)
    assert (part.step, part.timeline) == (4, {0: [3, 30], 4: [12, 120]})
    part.rebucket(8)
    assert (part.step, part.timeline) == (8, {0: [15, 150]})


def test_merge_takes_the_wider_step_of_the_two() -> None:
    part = Partial(timeline={1: [1, 1], 2: [1, 1], 3: [1, 1]})
    part.merge(Partial(timeline={4: [5, 50]}, step=2))
    assert (part.step, part.timeline) == (2, {0: [1, 1], 2: [2, 2], 4: [5, 50]})
    wide = Partial(timeline={0: [1, 1]}, step=4)
    wide.merge(Partial(timeline={5: [1, 1], 6: [1, 1], 9: [1, 1]}))
    assert (wide.step, wide.timeline) == (4, {0: [1, 1], 4: [2, 2], 8: [1, 1]})


def test_a_long_timeline_doubles_its_step_until_it_fits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "INSIGHT_TIMELINE_MAX", 4)
    part = Partial()
    part.merge(Partial(timeline={s: [1, 10] for s in range(4)}))
    assert (part.step, len(part.timeline)) == (1, 4)  # exactly the bound: kept as it is
    part.merge(Partial(timeline={s: [1, 10] for s in range(4, 9)}))
    assert part.step == 4
    assert part.timeline == {0: [4, 40], 4: [4, 40], 8: [1, 10]}


def test_json_round_trip_is_exact() -> None:
    part = earlier()
    part.merge(later())
    part.rebucket(2)
    data = json.loads(json.dumps(part.to_json()))
    assert data == {
        "packets": 7, "bytes": 700, "first": 10.0, "last": 20.0,
        "conversations": [[6, "10.0.0.1", 80, "10.0.0.2", 40000, 3, 250, 3, 170, 10.0, 20.0],
                          [17, "fd00::1", 53, "fd00::2", 5353, 1, 80, 0, 0, 15.0, 15.0]],
        "untracked": [3, 33],
        "links": [[0x0800, 6, 620], [0x86DD, 1, 80]],
        "ip_protocols": [[6, 6, 620], [17, 1, 80]],
        "services": [[6, 80, 6, 620], [17, 53, 1, 80]],
        "dns": [["a.example", 1, 1], ["b.example", 1, 0]],
        "tls": [["a.example", 3], ["b.example", 1]],
        "timeline": [[10, 2, 200], [12, 2, 110], [20, 3, 390]],
        "step": 2,
    }
    back = Partial.from_json(data)
    assert back == part


def test_from_json_of_an_older_cache_file_without_a_step() -> None:
    data = Partial(packets=1, bytes=2, timeline={3: [1, 2]}).to_json()
    del data["step"]
    back = Partial.from_json(data)
    assert (back.step, back.timeline, back.packets, back.bytes) == (1, {3: [1, 2]}, 1, 2)
    assert back.first is None and back.last is None


def test_ntop_reads_both_families() -> None:
    assert ntop(A4) == "10.0.0.1"
    assert ntop(B6) == "fd00::2"


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
