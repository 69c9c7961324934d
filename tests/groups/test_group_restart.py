"""Groups live in the controller's database: after a restart the group is still listed with
its members, and containers that start matching afterwards still join it."""

from __future__ import annotations

from pathlib import Path

from tests.groups.group_support import pod, tag
from tests.support import remove_container, running_server, wait_for


def test_a_group_outlives_a_restart_and_keeps_taking_members(tmp_path: Path) -> None:
    t = tag()
    made = [pod("rs1", {"app": f"rs-{t}"})]
    try:
        with running_server(tmp_path) as server:
            with server.client() as c:
                r = c.post("/api/capture-groups", json={"labels": f"app=rs-{t}"})
                assert r.status_code == 201, r.text
                gid = r.json()["group"]["id"]
            server.stop()
            server.start()
            with server.client() as c:
                group = c.get(f"/api/capture-groups/{gid}").json()["group"]
                assert group["status"] == "running"
                assert [m["workload_name"] for m in group["members"]] == [made[0].name]
                made.append(pod("rs2", {"app": f"rs-{t}"}))
                joined = wait_for(lambda: len((g := c.get(f"/api/capture-groups/{gid}").json()
                                               ["group"])["members"]) == 2 and g,
                                  timeout=30, what="a member to join after the restart")
                late = next(m for m in joined["members"] if m["workload_name"] == made[1].name)
                assert late["status"] == "running"
                assert late["capture"]["owner"] == "admin"
    finally:
        for m in made:
            remove_container(m)
