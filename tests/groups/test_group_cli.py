"""`podcap capture start --selector … --namespace …` and `podcap group …` against a real server
and real containers (in-process through Typer's CliRunner, as tests/test_cli.py does)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from podcap.cli.main import app
from tests.groups.group_support import client_of, ip_of, pod, tag, tcpdump_count, walk
from tests.support import Server, remove_container, wait_for

ISOLATED = {"PODCAP_SERVER": None, "PODCAP_USER": None, "PODCAP_PASSWORD": None,
            "PODCAP_TOKEN": None, "PODCAP_CACERT": None, "PODCAP_INSECURE": None}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gserver: Server):
    monkeypatch.chdir(tmp_path)
    env = {**ISOLATED, "PODCAP_CONFIG": str(tmp_path / "podcap.json"),
           "PODCAP_SERVER": gserver.url, "PODCAP_USER": "admin",
           "PODCAP_PASSWORD": gserver.password}

    def invoke(*args: str):
        return CliRunner().invoke(app, list(args), env=env)
    return invoke


def test_group_from_the_cli(cli, tmp_path: Path) -> None:
    t = tag()
    ns = f"cli-{t}"
    made = [pod("cweb1", {"app": f"cli-{t}"}, ns), pod("cweb2", {"app": f"cli-{t}"}, ns)]
    try:
        made.append(client_of("ccli", [ip_of(made[0]), ip_of(made[1])]))
        result = cli("capture", "start", "--selector", f"app=cli-{t}", "--namespace", ns,
                     "-o", "json")
        assert result.exit_code == 0, result.output
        group = json.loads(result.stdout)["group"]
        gid = group["id"]
        assert sorted(m["if_name"].split("/")[2] for m in group["members"]) == ["cweb1",
                                                                                "cweb2"]
        listing = cli("group", "ls")
        assert listing.exit_code == 0 and gid[:12] in listing.stdout
        wait_for(lambda: json.loads(cli("group", "show", gid[:8], "-o", "json").stdout)
                 ["group"]["stats"]["captured"] > 10, timeout=30, interval=0.5,
                 what="packets in the group")
        show = cli("group", "show", gid[:8])
        assert show.exit_code == 0 and f"{ns}/" in show.stdout
        stop = cli("group", "stop", gid[:8])
        assert stop.exit_code == 0 and "stopped" in stop.stdout
        got = cli("group", "get", gid, "-o", str(tmp_path / "g.pcapng"))
        assert got.exit_code == 0, got.output
        assert tcpdump_count(tmp_path / "g.pcapng") > 10
        assert len(walk(tmp_path / "g.pcapng").interfaces) == 2
        followed = cli("group", "get", gid, "--follow", "-o", str(tmp_path / "f.pcapng"))
        assert followed.exit_code == 0, followed.output  # a stopped group: all, then the end
        assert tcpdump_count(tmp_path / "f.pcapng") == tcpdump_count(tmp_path / "g.pcapng")
        bad = cli("capture", "start", "--selector", "app in (x")
        assert bad.exit_code == 2 and "at position 9" in bad.output
        none = cli("group", "start", "--namespace", f"empty-{t}")
        assert none.exit_code == 2 and f"namespace empty-{t}" in none.output
        assert cli("group", "rm", gid).exit_code == 0
        assert cli("group", "show", gid).exit_code == 4
    finally:
        for m in made:
            remove_container(m)
