"""Insight through a remote agent: the summary, the series and a conversation's download of a
capture held by an agent that dialled a real controller (documents and the filtered stream
cross gRPC unchanged)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from podcap.insight.conversation import Conversation
from tests.cluster.cluster_support import AgentProc, running_cluster
from tests.insight import tshark
from tests.support import read_pcap, wait_for, web_pair


def test_summary_series_and_conversation_from_a_remote_agent(tmp_path: Path) -> None:
    with web_pair("ins-remote") as pair, running_cluster(tmp_path) as cluster:
        agent = AgentProc(cluster, socket.gethostname(), tmp_path / "agent")
        agent.start(cluster.join_token())
        try:
            cid = cluster.server.sniff(pair.web.id)
            wait_for(lambda: len(_get(cluster, cid, "series")["points"]) >= 3, timeout=20,
                     what="3 series points from the remote agent")
            time.sleep(1)
            cluster.server.stop_sniffer(cid)
            full = tmp_path / "full.pcap"
            full.write_bytes(cluster.server.pcap(cid))
            summary = wait_for(lambda: (s := _get(cluster, cid, "summary", top=10000))
                               ["pending"] == 0 and s, timeout=30, what="the summary")
            assert summary["packets"] == len(read_pcap(full)[1]) > 0
            theirs = tshark.conversations(full, "tcp")
            assert len([c for c in summary["conversations"] if c["proto"] == "tcp"]) == \
                len(theirs) > 0
            conv = summary["conversations"][0]
            with cluster.server.client() as c:
                r = c.get(f"/api/captures/{cid}/conversations/pcap",
                          params={k: conv[k] for k in ("proto", "a", "b", "a_port", "b_port")})
            assert r.status_code == 200, r.text
            part = tmp_path / "part.pcap"
            part.write_bytes(r.content)
            wanted = Conversation.parse(conv["proto"], conv["a"], conv["b"], conv["a_port"],
                                        conv["b_port"]).display_filter()
            assert len(read_pcap(part)[1]) == conv["packets"] == tshark.count(full, wanted)
        finally:
            agent.stop()


def _get(cluster, cid: str, what: str, **params: object) -> dict:
    with cluster.server.client() as c:
        r = c.get(f"/api/captures/{cid}/{what}", params=params)
    assert r.status_code == 200, r.text
    return r.json()

