"""Download tickets: one use, bound to the capture and to the session that asked for it."""

from __future__ import annotations

import httpx
import pytest

from tests.support import Server


@pytest.fixture(scope="module")
def two_captures(server: Server, pair) -> tuple[str, str]:
    first = server.sniff(pair.web.id, duration=1)
    second = server.sniff(pair.web.id, duration=1)
    server.ended(first)
    server.ended(second)
    return first, second


def ticket(server: Server, token: str, cid: str) -> str:
    with server.client(token) as c:
        r = c.post(f"/api/captures/{cid}/ticket")
    assert r.status_code == 200, r.text
    return r.json()["url"]


def test_a_ticket_works_once(server: Server, two_captures) -> None:
    url = ticket(server, server.login(), two_captures[0])
    assert httpx.get(server.url + url).status_code == 200
    r = httpx.get(server.url + url)
    assert r.status_code == 401 and "ticket" in r.json()["message"]


def test_a_try_on_another_capture_does_not_use_it_up(server: Server, two_captures) -> None:
    first, second = two_captures
    url = ticket(server, server.login(), first)
    wrong = url.replace(f"/api/captures/{first}/", f"/api/captures/{second}/")
    assert httpx.get(server.url + wrong).status_code == 401
    assert httpx.get(server.url + url).status_code == 200  # still good for its own capture


def test_logout_ends_the_sessions_tickets(server: Server, two_captures) -> None:
    token = server.login()
    url = ticket(server, token, two_captures[0])
    with server.client(token) as c:
        assert c.post("/api/logout").status_code == 204
    r = httpx.get(server.url + url)
    assert r.status_code == 401 and "session ended" in r.json()["message"]


def test_a_change_to_the_user_ends_its_tickets(server: Server, two_captures) -> None:
    with server.client() as admin:
        assert admin.post("/api/users", json={
            "username": "ticketeer", "password": "ticketeer-password", "role": "reader",
            "download": True}).status_code == 201
        url = ticket(server, server.login("ticketeer", "ticketeer-password"), two_captures[0])
        assert admin.patch("/api/users/ticketeer", json={"download": False}).status_code == 200
    assert httpx.get(server.url + url).status_code == 401
