"""The containers page at size (issue 19): 2,000 simulated workloads, served in place of the
real list (the page's request is answered by the test: a real server with 2,000 containers
does not fit on this machine), shown a page of 100 rows at a time, searched and paged; a
refresh sends the list's token back and is answered "unchanged" without a new list. The
server's side of paging, search and the token: tests/test_workload_pages.py."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, Route, expect

from tests.support import Server
from tests.ui.pages import sign_in

pytestmark = pytest.mark.ui

N = 2000
TOKEN = "sim-1"


def simulated(i: int) -> dict[str, object]:
    return {"id": f"{i:064x}", "name": f"sim-{i:04d}", "image": "podcap-test/busybox:1",
            "namespace": f"team-{i % 7}", "pod_name": f"pod-{i}", "container_name": "",
            "node": f"node-{i % 50}", "ips": [f"10.9.{i // 250}.{i % 250}"], "state": "running",
            "cap_sniff": True, "cap_sniff_reason": "", "agent_id": f"{i % 50:016x}",
            "stale": False, "labels": {}, "runtime": "cri", "kind": "container"}


def test_two_thousand_workloads_page_search_and_refresh_unchanged(page: Page,
                                                                  server: Server) -> None:
    everything = [simulated(i) for i in range(N)]
    asked: list[dict[str, list[str]]] = []
    answered: list[float] = []

    def serve(route: Route) -> None:
        query = parse_qs(urlparse(route.request.url).query)
        asked.append(query)
        body = ({"unchanged": True, "token": TOKEN} if query.get("since") == [TOKEN] else
                {"workloads": everything, "total": N, "offset": 0, "token": TOKEN,
                 "unreachable": []})
        answered.append(time.monotonic())
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/api/workloads*", serve)
    sign_in(page, server)
    rows = page.locator("#workloads-body tr")
    expect(rows).to_have_count(100)
    first_render = time.monotonic() - answered[0]
    assert first_render <= 1.0, first_render
    print(f"2,000 workloads: first render {first_render:.2f} s after the answer")
    expect(page.locator("#workloads-count")).to_have_text(f"{N} containers.")
    expect(page.locator("#workloads-page")).to_have_text("Page 1 of 20")
    expect(rows.first).to_have_attribute("data-name", "sim-0000")

    page.get_by_role("button", name="Next").click()
    expect(page.locator("#workloads-page")).to_have_text("Page 2 of 20")
    expect(rows.first).to_have_attribute("data-name", "sim-0100")
    expect(page.get_by_role("button", name="Previous")).to_be_enabled()

    page.locator("#search").fill("team-3")  # every 7th: 286
    expect(page.locator("#workloads-count")).to_have_text(
        f"286 of {N} containers match “team-3”.")
    expect(page.locator("#workloads-page")).to_have_text("Page 1 of 3")  # back to page 1
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(86)
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.locator("#search").fill("sim-1999 node-49")
    expect(rows).to_have_count(1)
    expect(page.locator("#workloads-pages")).to_be_hidden()

    before = len(asked)
    with page.expect_response(lambda r: "since=" in r.url):
        page.locator("#refresh-workloads").click()
    # the answer's handling done: two frames later the table shows what it kept
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => "
                  "requestAnimationFrame(r)))")
    assert asked[0].get("since") is None
    assert asked[before:] and asked[before].get("since") == [TOKEN]  # answered: unchanged
    expect(rows).to_have_count(1)  # the list held is kept
    expect(page.locator("#workloads-count")).to_have_text(
        f"1 of {N} containers match “sim-1999 node-49”.")
