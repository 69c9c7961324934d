"""A member whose start failed is tried again while the group runs (a quota, a node away or a
full disk passes), on a real server whose quota makes the first start of one member fail."""

from __future__ import annotations

from pathlib import Path

from podcap import limits
from tests.groups.group_support import pod, tag
from tests.support import remove_container, running_server, wait_for


def test_a_member_that_could_not_start_joins_once_it_can(tmp_path: Path) -> None:
    t = tag()
    made = [pod("gretry", {"app": f"retry-{t}"}) for _ in range(2)]
    made.append(pod("gblock", {"app": f"block-{t}"}))
    try:
        with running_server(tmp_path, ["--trust-namespace-labels"],
                            env={"PODCAP_QUOTA_USER_CAPTURES": "2"}) as srv, srv.client() as c:
            blocker = srv.sniff(made[2].id)  # one of the admin's two captures
            r = c.post("/api/capture-groups", json={"labels": f"app=retry-{t}"})
            assert r.status_code == 201, r.text
            group = r.json()["group"]
            assert len(group["members"]) == 1, group
            [failed] = group["skipped"]
            assert failed["reason"].startswith("could not start: quota reached"), failed
            assert c.delete(f"/api/captures/{blocker}").status_code == 204  # room again

            def joined() -> dict | None:
                g = c.get(f"/api/capture-groups/{group['id']}").json()["group"]
                return g if len(g["members"]) == 2 else None

            now = wait_for(joined, timeout=limits.GROUP_RETRY_S + 3 * limits.GROUP_WATCH_INTERVAL_S,
                           what="the failed member to be retried")
            assert now["skipped"] == [], now
            assert {m["workload_name"] for m in now["members"]} == {m.name for m in made[:2]}
            assert all(m["status"] == "running" for m in now["members"]), now
            assert c.post(f"/api/capture-groups/{group['id']}/stop").status_code == 200
    finally:
        for m in made:
            remove_container(m)
