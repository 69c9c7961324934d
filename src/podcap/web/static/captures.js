// The captures list: one row per capture, refreshed every second while something runs (every
// two otherwise). Rows are kept by capture id and updated in place, so focus, an open error
// message and the user's place survive every refresh.

import { describe, del, get, post } from "./api.js";
import { fillRow, fillTime, makeRow } from "./capture-row.js";
import { confirmDialog } from "./confirm.js";
import { $, say } from "./dom.js";
import { savePcap } from "./download.js";
import { bytes, count } from "./format.js";
import { showUnreachable } from "./unreachable.js";

const FAST_MS = 1000; // while a capture runs
const SLOW_MS = 2000; // otherwise (the issue asks for at most 2 s)
const HIDDEN_MS = 10000; // background tab
const STALE_MS = 6000; // say so when the list is older than this

export class CaptureList {
  /**
   * `onChange()` runs after every refresh (the workloads table shows running counts);
   * `onUnreachable(nodes)` gets the nodes that did not answer this refresh.
   */
  constructor({ onChange, onUnreachable = () => {}, notify, canWrite,
    canDownload = () => true }) {
    this.onChange = onChange;
    this.onUnreachable = onUnreachable;
    this.notify = notify;
    this.canWrite = canWrite;
    this.canDownload = canDownload;
    this.rows = new Map(); // id -> {tr, cells, capture, error}
    this.captures = [];
    this.loaded = false;
    this.lastOk = 0;
    this.timer = null;
    this.active = false;
    this.inflight = null;
    this.body = $("#captures-body");
    this.status = $("#captures-status");
    this.error = $("#captures-error");
    this.banner = $("#captures-unreachable");
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.active) this.schedule(0);
    });
  }

  start() {
    this.active = true;
    this.started = Date.now();
    this.schedule(0);
    // Between refreshes (and while one is slow) clocks keep moving and staleness shows.
    clearInterval(this.ticker);
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  stop() {
    this.active = false;
    clearInterval(this.ticker);
    clearTimeout(this.timer);
    this.timer = null;
    this.inflight?.abort();
  }

  schedule(ms) {
    clearTimeout(this.timer);
    if (!this.active) return;
    this.timer = setTimeout(() => this.poll(), ms);
  }

  async poll() {
    this.inflight?.abort();
    const abort = new AbortController();
    this.inflight = abort;
    try {
      const { captures, unreachable } = await get("/api/captures",
        { signal: abort.signal, timeout: 10000 });
      this.lastOk = Date.now();
      say(this.error, "");
      showUnreachable(this.banner, unreachable);
      this.show(captures || []);
      this.onUnreachable(unreachable || []);
    } catch (err) {
      if (err.unauthorized || err.kind === "cancelled") return;
      say(this.error, describe(err, "refresh the captures"), "warn");
    } finally {
      if (this.inflight === abort) this.inflight = null;
    }
    this.tick();
    const running = this.captures.some((c) => c.status === "running");
    this.schedule(document.hidden ? HIDDEN_MS : running ? FAST_MS : SLOW_MS);
  }

  /** Move the clocks of running captures; say when the list is stale (slow agent, no server). */
  tick() {
    for (const row of this.rows.values()) {
      if (row.capture.status === "running") fillTime(row);
    }
    // Also when the first answer never came (the server stopped answering right away).
    const age = Date.now() - (this.lastOk || this.started || Date.now());
    this.status.textContent = age <= STALE_MS ? ""
      : this.lastOk ? `Last updated ${Math.round(age / 1000)} s ago — waiting for the server.`
        : `No answer for ${Math.round(age / 1000)} s — waiting for the server.`;
  }

  /** Running captures of a workload (on its node: a shared engine shows it on several). */
  runningCount(workload) {
    return this.captures.filter((c) => c.workload_id === workload.id && c.status === "running"
      && (!workload.agent_id || c.agent_id === workload.agent_id)).length;
  }

  /** Show the server's list; rows of captures that vanished (deleted elsewhere) go away. */
  show(captures) {
    this.loaded = true;
    this.captures = captures;
    const seen = new Set();
    let previous = null;
    for (const capture of captures) {
      seen.add(capture.id);
      let row = this.rows.get(capture.id);
      if (!row) {
        row = makeRow(capture, {
          onStop: (cid) => this.stopCapture(cid),
          onDownload: (cid) => this.download(cid),
          onDelete: (cid) => this.remove(cid),
        });
        this.rows.set(capture.id, row);
      }
      row.capture = capture;
      fillRow(row, this.canWrite(), this.canDownload());
      // Keep the server's order (newest first) without moving rows that are already in place.
      const want = previous ? previous.tr.nextSibling : this.body.firstChild;
      if (want !== row.tr) this.body.insertBefore(row.tr, want);
      previous = row;
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) this.drop(id, row);
    }
    $("#captures-empty").hidden = captures.length > 0;
    $("#captures-table").hidden = captures.length === 0;
    this.onChange();
  }

  /** Add one capture at once (just started) without waiting for the next refresh. */
  add(capture) {
    this.show([capture, ...this.captures.filter((c) => c.id !== capture.id)]);
    this.schedule(FAST_MS);
    const row = this.rows.get(capture.id);
    row?.tr.classList.add("fresh");
  }

  drop(id, row) {
    const hadFocus = row.tr.contains(document.activeElement);
    row.tr.remove();
    this.rows.delete(id);
    if (hadFocus) $("#captures-title").focus();
  }

  showRowError(id, text) {
    const row = this.rows.get(id);
    if (row) say(row.cells.error, text, "error");
  }

  /** The capture is gone on the server (deleted from another window): drop its row, say so. */
  vanished(id) {
    const row = this.rows.get(id);
    const name = row?.capture.workload_name || "that container";
    if (row) this.drop(id, row);
    this.show(this.captures.filter((c) => c.id !== id));
    this.notify(`The capture of ${name} no longer exists (deleted elsewhere).`, "warn");
  }

  async stopCapture(id) {
    const row = this.rows.get(id);
    if (!row) return;
    row.busy = "stop";
    row.cells.stop.disabled = true;
    row.cells.stop.textContent = "Stopping…";
    say(row.cells.error, "");
    try {
      const { capture } = await post(`/api/captures/${encodeURIComponent(id)}/stop`, undefined,
        { timeout: 30000 });
      this.inflight?.abort(); // a refresh started before the stop would show it running again
      row.busy = null;
      row.capture = capture;
      fillRow(row, this.canWrite(), this.canDownload());
      this.notify(`Stopped the capture of ${capture.workload_name}: ` +
        `${count(capture.stats?.captured)} packets.`);
      row.cells.download.focus();
    } catch (err) {
      row.busy = null;
      if (err.notFound) return this.vanished(id);
      if (!err.unauthorized) this.showRowError(id, describe(err, "stop the capture"));
      fillRow(row, this.canWrite(), this.canDownload());
      refocus(row.cells.stop);
    } finally {
      row.cells.stop.textContent = "Stop";
      this.schedule(0);
    }
  }

  /** Download through the browser's save dialog (see download.js). */
  async download(id) {
    const row = this.rows.get(id);
    if (!row) return;
    const button = row.cells.download;
    row.busy = "download";
    button.disabled = true;
    button.textContent = "Downloading…";
    say(row.cells.error, "");
    try {
      const { name, size } = await savePcap(row.capture);
      this.notify(`Downloaded ${name} (${bytes(size)}).`);
    } catch (err) {
      if (err.notFound) return this.vanished(id);
      if (!err.unauthorized) this.showRowError(id, describe(err, "download the pcap"));
    } finally {
      row.busy = null;
      button.disabled = Boolean(row.capture.stale) || !this.canDownload();
      button.textContent = "Download";
      refocus(button);
    }
  }

  async remove(id) {
    const row = this.rows.get(id);
    if (!row) return;
    const c = row.capture;
    const running = c.status === "running";
    const ok = await confirmDialog({
      title: `Delete the capture of ${c.workload_name}?`,
      text: `${running ? "It is still running: it will be stopped, and its" : "Its"} ` +
        `${count(c.file_number)} pcap file${c.file_number === 1 ? "" : "s"} ` +
        `(${bytes(c.size ?? 0)}) will be removed from the node. This cannot be undone.`,
      confirm: "Delete",
    });
    if (!ok) { row.cells.remove.focus(); return; }
    say(row.cells.error, "");
    row.busy = "delete";
    row.cells.remove.disabled = true;
    try {
      await del(`/api/captures/${encodeURIComponent(id)}`, { timeout: 30000 });
      this.drop(id, row);
      this.show(this.captures.filter((x) => x.id !== id));
      this.notify(`Deleted the capture of ${c.workload_name}.`);
    } catch (err) {
      if (err.notFound) return this.vanished(id);
      if (!err.unauthorized) this.showRowError(id, describe(err, "delete the capture"));
    } finally {
      row.busy = null;
      row.cells.remove.disabled = !this.canWrite() || Boolean(row.capture.stale);
      if (row.tr.isConnected) refocus(row.cells.remove);
    }
  }
}

/** A button disabled while it worked lost the focus: give it back if nothing else took it. */
function refocus(button) {
  if (document.activeElement === document.body && button.isConnected && !button.hidden) {
    button.focus();
  }
}
