"""`podcap extcap install` puts podcap.lua where the real tshark 4.0 loads it: its fields are
then known to Wireshark (a private HOME, as tests/live/test_extcap.py does)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import PODCAP


def test_lua_plugin_is_installed_by_extcap_install(tmp_path: Path) -> None:
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODCAP_", "XDG_"))}
    env["HOME"] = str(tmp_path)
    done = subprocess.run([PODCAP, "extcap", "install"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    fields = subprocess.run(["tshark", "-G", "fields"], capture_output=True, text=True,
                            env=env, timeout=60).stdout
    found = {line.split("\t")[2] for line in fields.splitlines()
             if line.startswith("F\t") and "\tpodcap." in line}
    assert found == {"podcap.node", "podcap.namespace", "podcap.pod", "podcap.container",
                     "podcap.peer"}
