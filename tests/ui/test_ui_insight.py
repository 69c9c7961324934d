"""The capture detail view in a real Chromium (issue 13): the live chart gains points while a
capture runs; the page shows conversations and protocols; a click on a conversation downloads
a pcap holding exactly that conversation's packets (checked against tshark on the full file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from podcap.insight.conversation import Conversation
from tests.insight import tshark
from tests.support import ARTIFACTS, Server, WebPair, read_pcap, wait_for
from tests.ui.pages import sign_in

pytestmark = pytest.mark.ui


def _start(server: Server, name: str) -> str:
    with server.client() as api:
        wid = next(w["id"] for w in api.get("/api/workloads").json()["workloads"]
                   if w["name"] == name)
        r = api.post("/api/captures", json={"workload_id": wid})
        assert r.status_code == 201, r.text
        return r.json()["capture"]["id"]


def _points(page: Page, selector: str) -> int:
    return int(page.locator(selector).get_attribute("data-points") or 0)


def test_detail_view_live_chart_tables_and_conversation_download(
        page: Page, server: Server, pair: WebPair, tmp_path: Path) -> None:
    name = pair.web.name
    cid = _start(server, name)
    try:
        sign_in(page, server)
        row = page.locator(f'#captures-body tr[data-capture-id="{cid}"]')
        row.get_by_role("button", name=f"Details of capture of {name}").click()
        dialog = page.locator("#detail-dialog")
        expect(dialog).to_be_visible()
        # The live chart gains points while the capture runs.
        first = wait_for(lambda: _points(page, "#detail-live") >= 2 and
                         _points(page, "#detail-live"), timeout=20, what="live points")
        wait_for(lambda: _points(page, "#detail-live") >= first + 2, timeout=20,
                 what="more live points")
        expect(page.locator("#detail-live canvas")).to_be_visible()
        # Conversations and protocols while it runs (read incrementally from the files).
        expect(page.locator("#detail-conversations tbody tr").first).to_be_visible(timeout=20_000)
        expect(page.locator("#detail-protocols")).to_contain_text("tcp")
        expect(page.locator("#detail-protocols")).to_contain_text("http")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-insight-live.png"))
    finally:
        with server.client() as api:
            assert api.post(f"/api/captures/{cid}/stop").status_code == 200
    # After the stop the view settles on the complete summary: the three conditions on one
    # reading of the text (one after the other, "not still reading" could pass on the running
    # summary and "not updates while" on a pending one that came next: a loaded run did).
    def settled() -> bool:
        text = page.locator("#detail-totals").inner_text()
        return "packets" in text and "still reading" not in text and "updates while" not in text

    wait_for(settled, timeout=20, what="the complete summary")
    assert int(page.locator("#detail-timeline").get_attribute("data-points") or 0) >= 1
    full = tmp_path / "full.pcap"
    full.write_bytes(server.pcap(cid))
    with server.client() as api:
        summary = api.get(f"/api/captures/{cid}/summary", params={"top": 10000}).json()
    assert int(page.locator("#detail-timeline").get_attribute("data-packets") or 0) == \
        summary["packets"] == len(read_pcap(full)[1])
    # Click a conversation: only its packets arrive.
    first_row = page.locator("#detail-conversations tbody tr").first
    a_text = first_row.locator("td").nth(1).inner_text()
    b_text = first_row.locator("td").nth(2).inner_text()
    conv = next(c for c in summary["conversations"]
                if f"{c['a']}:{c['a_port']}" == a_text and f"{c['b']}:{c['b_port']}" == b_text)
    with page.expect_download() as info:
        first_row.get_by_role("button", name="Download conversation").click()
    path = info.value.path()
    assert path is not None, info.value.failure()
    assert info.value.suggested_filename.endswith(".pcap")
    linktype, packets = read_pcap(path)
    wanted = Conversation.parse(conv["proto"], conv["a"], conv["b"], conv["a_port"],
                                conv["b_port"]).display_filter()
    assert linktype == 276
    assert len(packets) == conv["packets"] == tshark.count(full, wanted) > 0
    assert tshark.count(Path(path), wanted) == len(packets)
    page.screenshot(path=str(ARTIFACTS / "ui-insight-detail.png"), full_page=True)
    page.get_by_role("button", name="Close").first.click()
    expect(dialog).to_be_hidden()


def test_kernel_drops_are_marked_on_the_live_chart(page: Page, server: Server) -> None:
    """Drops are rare on demand, so the chart module is fed counters with drops in the page."""
    sign_in(page, server)
    result = page.evaluate("""async () => {
        const m = await import("./rate-chart.js");
        const el = document.createElement("div");
        document.body.append(el);
        const chart = new m.LiveChart(el);
        chart.add([[100, 0, 0, 0], [101, 10, 0, 1000], [102, 30, 5, 3000], [103, 40, 5, 4000]]);
        return { data: m.rates(chart.points), drops: el.dataset.drops,
                 points: el.dataset.points };
    }""")
    xs, pps, bps, drops = result["data"]
    assert xs == [101, 102, 103] and pps == [10, 20, 10] and bps == [1000, 2000, 1000]
    assert drops == [None, 20, None]  # a red point on the packets line where drops happened
    assert result["drops"] == "1" and result["points"] == "3"
