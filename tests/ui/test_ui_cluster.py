"""The cluster in the web UI: a real `podcap controller` and real `podcap agent` processes on
loopback (tests/cluster/cluster_support.py), driven in Chromium.

The Nodes list shows the agents; an admin creates a join token in the page and a new agent
joins with it; Revoke (confirmed) removes a node; a killed agent shows disconnected within
seconds, both lists say its node is not answering, and its capture is marked "last known" with
Stop and Download disabled; when the agent is back the banner goes. A plain `podcap serve` lists
its in-process agent (not revocable) and says how to enable agents when asked for a token.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.cluster.cluster_support import AgentProc, Cluster, running_cluster
from tests.support import ARTIFACTS, Server, WebPair
from tests.ui.pages import sign_in

pytestmark = pytest.mark.ui

Spawn = Callable[..., AgentProc]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A controller with one agent, n1, for the whole module."""
    tmp = tmp_path_factory.mktemp("ui-cluster")
    with running_cluster(tmp) as c:
        n1 = AgentProc(c, node="n1", data_dir=tmp / "n1")
        try:
            n1.start(c.join_token())
            yield c
        finally:
            n1.stop()


@pytest.fixture
def spawn(cluster: Cluster, tmp_path: Path) -> Iterator[Spawn]:
    """Start more agents; after the test they are revoked (so later tests see no disconnected
    node) and stopped."""
    started: list[AgentProc] = []

    def start(node: str, token: str | None = None, args: tuple[str, ...] = ()) -> AgentProc:
        agent = AgentProc(cluster, node=node, data_dir=tmp_path / node)
        agent.runtime_args += args
        started.append(agent)
        return agent.start(token or cluster.join_token())

    yield start
    with cluster.server.client() as api:
        for a in cluster.agents():
            if a["node"] in {s.node for s in started}:
                api.delete(f"/api/agents/{a['id']}")
    for agent in started:
        agent.stop()


def node_row(page: Page, node: str) -> Locator:
    return page.locator(f'#nodes-body tr[data-node="{node}"]')


def test_nodes_list_join_token_and_revoke(page: Page, cluster: Cluster, spawn: Spawn) -> None:
    sign_in(page, cluster.server, heading="Nodes")
    n1 = node_row(page, "n1")
    expect(n1.locator(".badge")).to_have_text("connected")
    expect(n1).to_contain_text(cluster.agent("n1")["id"][:8])  # type: ignore[index]
    expect(n1).to_contain_text("docker")
    expect(n1.locator("[data-seen]")).to_have_text(re.compile(r"^\d+ s ago$"))
    expect(page.locator("#nodes-count")).to_have_text("1 node, all connected.")

    # An admin creates a join token in the page; it is shown once, with the command line.
    page.get_by_role("button", name="Join token…").click()
    dialog = page.get_by_role("dialog", name="Join token")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Valid for (minutes)")).to_be_focused()
    expect(page.get_by_label("Valid for (minutes)")).to_have_value("60")
    expect(page.get_by_label("Nodes that may join with it")).to_have_value("1")
    page.get_by_label("Valid for (minutes)").fill("10")
    dialog.get_by_role("button", name="Create token").click()
    field = dialog.get_by_role("textbox", name="Join token", exact=True)
    expect(field).to_have_value(re.compile(r"^\S{40,}$"))
    expect(field).to_be_focused()
    token = field.input_value()
    expect(page.get_by_label("Run on the new node")).to_have_value(
        f"podcap agent --controller 127.0.0.1:10444 --join-token {token}")
    expect(dialog).to_contain_text("for 1 join.")
    dialog.get_by_role("button", name="Copy the command").click()  # dom.js copyField
    expect(page.locator("#join-copied")).to_have_text(re.compile("^(Copied|Selected)"))
    page.screenshot(path=str(ARTIFACTS / "ui-cluster-join-token.png"))

    # The token shown is accepted: a second agent joins with it and appears as a node.
    spawn("n2", token)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Join token…")).to_be_focused()
    # Shown once, then forgotten (the dialog's close event clears it, a task after it hides).
    expect(page.locator("#join-token")).to_have_value("")
    expect(page.locator("#join-command")).to_have_value("")
    expect(node_row(page, "n2").locator(".badge")).to_have_text("connected")
    expect(page.locator("#nodes-count")).to_have_text("2 nodes, all connected.")

    # Revoke asks first (Cancel keeps the node), then removes it.
    n2 = node_row(page, "n2")
    revoke = n2.get_by_role("button", name="Revoke the agent of node n2")
    confirm = page.get_by_role("dialog", name="Revoke the agent of node n2?")
    revoke.click()
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Cancel").click()
    expect(n2).to_have_count(1)
    revoke.click()
    confirm.get_by_role("button", name="Revoke").click()
    expect(n2).to_have_count(0)
    expect(page.locator("#notice")).to_contain_text("Revoked the agent of node n2.")
    assert cluster.agent("n2") is None
    expect(page.locator("#nodes-count")).to_have_text("1 node, all connected.")
    # "Last seen" follows the heartbeats (every 3 s) rather than counting up from sign-in.
    expect(n1.locator("[data-seen]")).to_have_text(re.compile(r"^[0-5] s ago$"), timeout=10_000)


def test_killed_agent_shows_disconnected_and_last_known_capture(
        page: Page, cluster: Cluster, spawn: Spawn, pair: WebPair) -> None:
    name = pair.web.name  # type: ignore[attr-defined]
    n3 = spawn("n3")
    aid = cluster.agent("n3")["id"]  # type: ignore[index]
    # Both agents share this Docker engine, so the container is on n1 and n3: name the node.
    with cluster.server.client() as api:
        r = api.post("/api/captures", json={"workload_id": pair.web.id, "agent_id": aid})
    assert r.status_code == 201, r.text
    cid = r.json()["capture"]["id"]

    try:
        watch_node_go_and_come_back(page, cluster.server, n3, name, cid)
    finally:
        if n3.proc is not None and n3.proc.poll() is not None:
            n3.start()  # a killed agent leaves its tcpdump running: the agent adopts it again
        with cluster.server.client() as api:
            api.delete(f"/api/captures/{cid}")  # stops that tcpdump if the test did not


def test_the_capture_form_says_the_nodes_own_reclaim_policy(
        page: Page, cluster: Cluster, spawn: Spawn, pair: WebPair) -> None:
    # A controller has no --reclaim of its own; each agent has, and tells it when it connects.
    name = pair.web.name  # type: ignore[attr-defined]
    spawn("n5", args=("--reclaim", "oldest"))
    sign_in(page, cluster.server)
    page.get_by_label("Search").fill(name)
    for node, says in (("n5", True), ("n1", False)):
        row = page.locator(f'#workloads-body tr[data-name="{name}"][data-node="{node}"]')
        row.get_by_role("button", name=f"Capture traffic of {name}").click()
        dialog = page.get_by_role("dialog", name=f"Capture {name}")
        expect(dialog).to_be_visible()
        note = dialog.locator("#cf-retention")
        if says:
            expect(note).to_contain_text("oldest stopped captures first (never a running one)")
        else:
            expect(note).to_be_hidden()
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()


def watch_node_go_and_come_back(page: Page, server: Server, n3: AgentProc, name: str,
                                cid: str) -> None:
    sign_in(page, server, heading="Nodes")
    page.get_by_label("Search").fill(name)
    workloads = page.locator(f'#workloads-body tr[data-name="{name}"]')
    expect(workloads).to_have_count(2)
    expect(workloads.locator('td[data-label="Node"]')).to_have_text(["n1", "n3"])
    expect(workloads.filter(has_text="1 capturing")).to_have_attribute("data-node", "n3")
    row = page.locator(f'#captures-body tr[data-capture-id="{cid}"]')
    expect(row.locator("[data-field=node]")).to_have_text("n3")
    stop = row.get_by_role("button", name=f"Stop capture of {name}")
    expect(stop).to_be_enabled()
    expect(page.locator("#captures-unreachable")).to_be_hidden()

    n3.stop(signal.SIGKILL)
    banner = page.locator("#captures-unreachable")
    expect(banner).to_contain_text("Node n3 is not answering (", timeout=15_000)
    expect(banner).to_contain_text(
        "— its containers and captures show their last known state.")
    expect(node_row(page, "n3").locator(".badge")).to_have_text("disconnected")
    expect(page.locator("#nodes-count")).to_have_text("2 nodes · 1 disconnected.")
    expect(row.locator(".badge.stale")).to_have_text("last known")
    expect(stop).to_be_disabled()
    expect(stop).to_have_attribute("title", re.compile(r"Node n3 is not answering"))
    expect(row.get_by_role("button", name=f"Download pcap of {name}")).to_be_disabled()
    # The containers list says it too (it refreshes every 5 s); n3's copy stays, last known,
    # and cannot be captured until n3 answers (issue 19: a node away keeps its last view).
    expect(page.locator("#workloads-unreachable")).to_contain_text(
        "Node n3 is not answering", timeout=10_000)
    expect(workloads).to_have_count(2)
    on_n3 = page.locator(f'#workloads-body tr[data-name="{name}"][data-node="n3"]')
    expect(on_n3.locator(".badge.stale")).to_have_text("last known")
    expect(on_n3.get_by_role("button", name=f"Capture traffic of {name}")).to_be_disabled()
    expect(on_n3).to_contain_text("Cannot capture: node n3 is not answering")
    page.screenshot(path=str(ARTIFACTS / "ui-cluster-node-not-answering.png"), full_page=True)

    # The agent comes back (already joined: no token): the banners go, nothing is last-known.
    n3.start()
    expect(banner).to_be_hidden(timeout=15_000)
    expect(node_row(page, "n3").locator(".badge")).to_have_text("connected")
    expect(page.locator("#captures-body .badge.stale")).to_have_count(0)
    expect(page.locator("#workloads-unreachable")).to_be_hidden(timeout=10_000)
    expect(page.locator("#workloads-body .badge.stale")).to_have_count(0)
    # Back to normal: the capture runs on (the agent adopted its tcpdump) and Stop works.
    expect(stop).to_be_enabled()
    stop.click()
    expect(row).to_contain_text("stopped by user")


def test_plain_serve_has_one_node_and_no_join_tokens(page: Page, server: Server) -> None:
    """`podcap serve`: its in-process agent cannot be revoked; asking for a join token shows
    the server's message on how to enable agents. At phone width, labelled and no overflow."""
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, server, heading="Nodes")
    rows = page.locator("#nodes-body tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("in this server")
    expect(rows.locator(".badge")).to_have_text("connected")
    expect(rows.get_by_role("button")).to_have_count(0)  # no Revoke for the in-process agent

    opener = page.get_by_role("button", name="Join token…")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Join token")
    expect(dialog).to_be_visible()
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter((el) => !el.labels?.length && !el.getAttribute('aria-label'))
        .map((el) => el.id || el.name)""")
    assert unlabelled == []
    page.keyboard.press("Enter")  # submits the form from the focused "Valid for" field
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("Could not create a join token: this server accepts no agents")
    expect(alert).to_contain_text("--agent-listen")
    expect(page.locator("#join-result")).to_be_hidden()
    page.screenshot(path=str(ARTIFACTS / "ui-cluster-no-join-tokens-narrow.png"))
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a 390px window"
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    page.locator("#nodes-section").screenshot(path=str(ARTIFACTS / "ui-cluster-nodes-narrow.png"))
