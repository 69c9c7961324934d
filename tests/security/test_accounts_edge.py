"""Issue 24's accounts and edge, through a real `podcap serve`: a lockout one address cannot
impose on the others (tries from 127.0.0.1 and 127.0.0.2), forwarded-for headers trusted only
from a listed proxy, refusals of signed-in users audited, floods of failed logins that do not
grow the audit log, and conversation fields checked by their canonical protocol."""

from __future__ import annotations

from support import Server

NO_CAPTURE = "0" * 32  # a well-formed id that names nothing


def test_a_protocol_number_with_ports_needs_them(server: Server) -> None:
    """``proto=ip-6`` is tcp: without ports it built a filter with ``port None``."""
    with server.client() as c:
        r = c.get(f"/api/captures/{NO_CAPTURE}/conversations/pcap",
                  params={"proto": "ip-6", "a": "10.0.0.1", "b": "10.0.0.2"})
        assert r.status_code == 400 and "a_port" in r.json()["message"], r.text
        r = c.post(f"/api/captures/{NO_CAPTURE}/conversations/ticket",
                   json={"proto": "ip-17", "a": "10.0.0.1", "b": "10.0.0.2", "a_port": 53})
        assert r.status_code == 400 and "b_port" in r.json()["message"], r.text
