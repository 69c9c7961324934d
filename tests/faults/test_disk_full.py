"""The data dir on a small tmpfs that fills: captures stop with reason "disk full", every pcap
still parses, every capture record is whole, and the server keeps answering.

The free-space floor (``--min-free-bytes``) is set to 0 here so the last guard is what is
tested: below limits.DISK_FULL_RESERVE_BYTES free, captures stop whatever the floor says.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    read_pcap,
    remove_container,
    run_container,
    running_server,
    unique,
    wait_for,
)

TMPFS_MB = 8


@pytest.fixture()
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "data"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0700", "tmpfs",
                    str(mount)], check=True, timeout=30)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def test_full_data_dir_stops_captures_with_disk_full(tmp_path: Path, small_fs: Path) -> None:
    # ~400 KB/s of 1000-byte pings on the container's own loopback, per capture.
    box = run_container(unique("fill"), ["ping", "-q", "-i", "0.005", "-s", "1000", "-w", "300",
                                         "127.0.0.1"])
    try:
        with running_server(tmp_path, env={"PODCAP_MIN_FREE_BYTES": "0"}) as srv:
            assert srv.data_dir == small_fs
            cids = [srv.sniff(box.id, file_number=50, file_size_mb=1) for _ in range(2)]
            for cid in cids:
                final = srv.ended(cid, timeout=60)
                assert (final["status"], final["reason"]) == ("stopped", "disk full"), final
            with srv.client() as c:  # still answering, and says why a new start cannot run
                assert c.get("/v1/sniffer").status_code == 200
                r = c.post("/v1/sniffer", params={"f_workload": box.id}, json={"sniffer": {}})
                assert 400 <= r.status_code < 500 and "disk full" in r.text, r.text
            for cid in cids:
                data = srv.pcap(cid)
                assert read_pcap(data)[0] == 276 and len(read_pcap(data)[1]) > 100
                path = tmp_path / f"{cid}.pcap"
                path.write_bytes(data)
                done = subprocess.run(["capinfos", "-c", str(path)], capture_output=True,
                                      text=True, timeout=60)
                assert done.returncode == 0 and "cut short" not in done.stderr, done.stderr
                for ring_file in (small_fs / "captures" / cid / "files").iterdir():
                    done = subprocess.run(["capinfos", "-c", str(ring_file)],
                                          capture_output=True, text=True, timeout=60)
                    assert done.returncode == 0, (ring_file, done.stderr)
            for record in (small_fs / "captures").glob("*/capture.json"):
                saved = json.loads(record.read_text())  # whole JSON, the final state
                assert saved["status"] == "stopped" and saved["reason"] == "disk full", saved
            assert len(list((small_fs / "captures").glob("*/capture.json"))) == 2
            wait_for(lambda: srv.sniffer(cids[0])["status"] == "stopped")
    finally:
        remove_container(box)
