"""Idempotent starts (controller/start_keys.py) on both databases: one key, one start, the
same capture for every repeat, concurrent or later; a failed start frees its key."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from podcap.controller.db import open_db
from podcap.controller.principal import Principal
from podcap.controller.start_keys import StartKeys
from podcap.errors import CaptureFailed, InvalidArgument

WHO = Principal("alice", "operator")


def owned(cid: str):  # type: ignore[no-untyped-def]
    return SimpleNamespace(capture=SimpleNamespace(id=cid))


def test_one_key_starts_once_even_when_repeated_at_once(db_url: str, tmp_path) -> None:
    sessions = open_db(db_url, tmp_path)
    keys = [StartKeys(sessions), StartKeys(sessions)]  # two replicas
    started: list[int] = []
    answers: list[str] = []

    def start():  # type: ignore[no-untyped-def]
        started.append(1)
        time.sleep(0.5)  # a start takes a while: the repeat arrives meanwhile
        return owned("c1")

    def call(i: int) -> None:
        got = keys[i % 2].once(WHO, "k-1", start, lambda cid: owned(cid))
        answers.append(got.capture.id)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert started == [1] and answers == ["c1"] * 4
    # Another user's same key is another key.
    other = keys[0].once(Principal("bob", "operator"), "k-1", lambda: owned("c2"),
                         lambda cid: owned(cid))
    assert other.capture.id == "c2"
    sessions.kw["bind"].dispose()


def test_a_failed_start_frees_its_key_and_a_bad_key_is_refused(db_url: str, tmp_path) -> None:
    sessions = open_db(db_url, tmp_path)
    keys = StartKeys(sessions)

    def fails():  # type: ignore[no-untyped-def]
        raise CaptureFailed("tcpdump said no")

    with pytest.raises(CaptureFailed):
        keys.once(WHO, "k-2", fails, lambda cid: owned(cid))
    assert keys.once(WHO, "k-2", lambda: owned("c3"), lambda cid: owned(cid)).capture.id == "c3"
    with pytest.raises(InvalidArgument):
        keys.once(WHO, "no spaces", lambda: owned("x"), lambda cid: owned(cid))
    assert keys.once(WHO, None, lambda: owned("c4"), lambda cid: owned(cid)).capture.id == "c4"
    sessions.kw["bind"].dispose()
