"""``python -m bench``: run the figures, write BENCHMARKS.md and bench/results/*.json.

``--smoke`` runs every figure with tiny sizes (a few seconds each) and writes its report to
bench/results/smoke.md, never over BENCHMARKS.md. ``--only`` runs some figures; the report keeps
the other figures' sections from the existing file (bench/report.py).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    cluster,
    download,
    failover,
    fidelity,
    insight,
    inventory,
    latency,
    machine,
    recorder,
    report,
    scale,
    stopfid,
)
from bench import live as live_figure
from bench import load as load_figure
from bench import start_latency as start_figure
from bench.common import ROOT
from bench.context import Context
from bench.inventory import InventoryConfig

FIGURES: dict[str, Callable[[Context], dict[str, Any]]] = {
    "fidelity": fidelity.run, "latency": latency.run, "stop": stopfid.run,
    "download": download.run, "scale": scale.run, "cluster": cluster.run,
    "insight": insight.run, "start": start_figure.run, "load": load_figure.run,
    "live": live_figure.run, "inventory": inventory.run, "failover": failover.run,
    "recorder": recorder.run,
}
RESULTS = ROOT / "bench" / "results"


def _json_default(obj: Any) -> Any:
    return list(obj) if isinstance(obj, tuple | set) else str(obj)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code, not speed")
    ap.add_argument("--only", default="", help=f"comma list of figures: {','.join(FIGURES)}")
    ap.add_argument("--out", type=Path, help="Markdown report (default BENCHMARKS.md; "
                    "bench/results/smoke.md with --smoke)")
    ap.add_argument("--json", type=Path, help="raw results (default bench/results/<time>.json)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a size, e.g. --set fid_repeats=5 --set "
                    "sweep_buffers_kib=2048,8192")
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="measure nothing: write the report (--out) from a saved run's JSON, "
                    "keeping the sections of figures it lacks")
    ns = ap.parse_args(argv)
    if ns.render:
        out = ns.out or ROOT / "BENCHMARKS.md"
        out.write_text(report.render(json.loads(ns.render.read_text()), out))
        print(f"bench: wrote {out} from {ns.render}", flush=True)
        return 0

    cfg = InventoryConfig.smoke_config() if ns.smoke else InventoryConfig()
    for assignment in ns.set:
        cfg.set(assignment)
    only = [f for f in ns.only.split(",") if f] or list(FIGURES)
    unknown = [f for f in only if f not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    out = ns.out or (RESULTS / "smoke.md" if ns.smoke else ROOT / "BENCHMARKS.md")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    json_path = ns.json or RESULTS / f"{'smoke' if ns.smoke else 'run'}-{stamp}.json"

    started = datetime.now(UTC)
    t0 = time.monotonic()
    command = "python -m bench" + (" --smoke" if ns.smoke else "") + \
        (f" --only {ns.only}" if ns.only else "") + "".join(f" --set {s}" for s in ns.set)
    run_info: dict[str, Any] = {
        "command": command, "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.facts(), "config": cfg.as_dict(), "results": {}, "timings_s": {},
    }
    # Ended from outside (the smoke test's bound): unwind, so that every figure's cleanup and
    # ctx.close() still remove the containers and processes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ctx = Context(cfg)
    failed = []
    try:
        for name in only:
            t = time.monotonic()
            print(f"bench: {name} ...", flush=True)
            try:
                run_info["results"][name] = FIGURES[name](ctx)
            except Exception:  # noqa: BLE001 - a failed figure is reported, the others still run
                failed.append(name)
                run_info["results"][name] = {"error": traceback.format_exc(limit=8)}
                print(traceback.format_exc(), file=sys.stderr, flush=True)
            run_info["timings_s"][name] = time.monotonic() - t
            print(f"bench: {name} done in {run_info['timings_s'][name]:.1f} s", flush=True)
    finally:
        run_info["commands"] = ctx.commands
        ctx.close()
    results = run_info["results"]
    if "targets" in results.get("inventory", {}) and "scale" in results.get("cluster", {}):
        results["inventory"]["figure6_now"] = results["cluster"]["scale"][-1]["workload_ms"]
    run_info["elapsed_s"] = time.monotonic() - t0
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(run_info, indent=1, default=_json_default))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.render(run_info, out))
    print(f"bench: wrote {out} and {json_path} in {run_info['elapsed_s']:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
