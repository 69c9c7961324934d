// The captures list: one row per capture, refreshed every second while something runs (every
// two otherwise). Rows are kept by capture id and updated in place, so focus, an open error
// message and the user's place survive every refresh.

import { describe, del, get, post, request, serverNow } from "./api.js";
import { confirmDialog } from "./confirm.js";
import { $, h, say } from "./dom.js";
import { bytes, clock, count, duration as human, stamp, when } from "./format.js";

const FAST_MS = 1000; // while a capture runs
const SLOW_MS = 2000; // otherwise (the issue asks for at most 2 s)
const HIDDEN_MS = 10000; // background tab
const STALE_MS = 6000; // say so when the list is older than this

export class CaptureList {
  /** `onChange()` runs after every refresh (the workloads table shows running counts). */
  constructor({ onChange, notify, canWrite }) {
    this.onChange = onChange;
    this.notify = notify;
    this.canWrite = canWrite;
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
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.active) this.schedule(0);
    });
  }

  start() {
    this.active = true;
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
      const { captures } = await get("/api/captures", { signal: abort.signal, timeout: 10000 });
      this.lastOk = Date.now();
      say(this.error, "");
      this.show(captures || []);
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
      if (row.capture.status === "running") this.fillTime(row);
    }
    const age = Date.now() - this.lastOk;
    this.status.textContent = this.lastOk && age > STALE_MS
      ? `Last updated ${Math.round(age / 1000)} s ago — waiting for the server.` : "";
  }

  runningCount(workloadId) {
    return this.captures.filter((c) => c.workload_id === workloadId && c.status === "running")
      .length;
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
        row = this.makeRow(capture);
        this.rows.set(capture.id, row);
      }
      row.capture = capture;
      this.fill(row);
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
    row?.cells.stop.focus();
  }

  drop(id, row) {
    const hadFocus = row.tr.contains(document.activeElement);
    row.tr.remove();
    this.rows.delete(id);
    if (hadFocus) $("#captures-title").focus();
  }

  makeRow(capture) {
    const id = capture.id;
    const label = capture.workload_name || capture.workload_id?.slice(0, 12) || id;
    const cells = {
      name: h("span", { class: "name" }),
      where: h("div", { class: "muted small" }),
      status: h("span", { class: "badge" }),
      reason: h("div", { class: "small reason-text" }),
      filter: h("code", { class: "filter" }),
      files: h("div", { class: "muted small" }),
      packets: h("span", { dataset: { field: "packets" } }),
      received: h("div", { class: "muted small" }),
      bytes: h("span", { dataset: { field: "bytes" } }),
      drops: h("span", { dataset: { field: "drops" } }),
      progress: h("progress", { max: 1, value: 0 }),
      time: h("div", { class: "small", dataset: { field: "time" } }),
      stop: h("button", { type: "button", dataset: { focusKey: `stop-${id}`, action: "stop" },
        "aria-label": `Stop capture of ${label}`, onclick: () => this.stopCapture(id) }, "Stop"),
      download: h("button", { type: "button", dataset: { action: "download" },
        "aria-label": `Download pcap of ${label}`, onclick: () => this.download(id) }, "Download"),
      remove: h("button", { type: "button", class: "danger", dataset: { action: "delete" },
        "aria-label": `Delete capture of ${label}`, onclick: () => this.remove(id) }, "Delete"),
      error: h("p", { class: "row-error", role: "alert", hidden: true }),
    };
    cells.progress.setAttribute("aria-label", `Time of capture of ${label}`);
    const tr = h("tr", { dataset: { captureId: id } },
      h("td", { "data-label": "Container" }, cells.name, cells.where),
      h("td", { "data-label": "Status" }, cells.status, cells.reason),
      h("td", { "data-label": "Filter" }, cells.filter, cells.files),
      h("td", { "data-label": "Packets", class: "num" }, cells.packets, cells.received),
      h("td", { "data-label": "Bytes", class: "num" }, cells.bytes),
      h("td", { "data-label": "Drops", class: "num" }, cells.drops),
      h("td", { "data-label": "Time", class: "time" }, cells.progress, cells.time),
      h("td", { class: "actions", "data-label": "" },
        h("div", { class: "buttons" }, cells.stop, cells.download, cells.remove), cells.error),
    );
    return { tr, cells, capture };
  }

  fill(row) {
    const c = row.capture;
    const { cells } = row;
    const stats = c.stats || {};
    const spec = c.spec || {};
    cells.name.textContent = c.workload_name || c.workload_id?.slice(0, 12) || "?";
    cells.where.textContent = [c.pod_name, c.namespace, c.node].filter(Boolean).join(" · ");
    cells.status.textContent = c.status;
    cells.status.className = `badge status-${c.status}`;
    cells.reason.textContent = c.reason || "";
    cells.reason.className = `small reason-text${c.status === "failed" ? " error-text" : ""}`;
    cells.filter.textContent = spec.filter || "no filter";
    cells.filter.classList.toggle("muted", !spec.filter);
    cells.filter.title = c.args || "";
    const maxDisk = (spec.file_number || 0) * (spec.file_size_mb || 0) * 1e6;
    cells.files.textContent = `${count(c.file_number)} file${c.file_number === 1 ? "" : "s"}` +
      (maxDisk ? ` · max ${bytes(maxDisk)}` : "");
    cells.packets.textContent = count(stats.captured);
    cells.received.textContent = stats.received ? `${count(stats.received)} seen` : "";
    cells.bytes.textContent = bytes(c.size ?? stats.bytes);
    cells.drops.textContent = count(stats.dropped);
    cells.drops.classList.toggle("error-text", stats.dropped > 0);
    this.fillTime(row);
    const running = c.status === "running";
    cells.stop.disabled = !running || row.busy === "stop" || !this.canWrite();
    cells.stop.hidden = !running;
    cells.remove.disabled = row.busy === "delete" || !this.canWrite();
    row.tr.classList.toggle("is-running", running);
  }

  fillTime(row) {
    const c = row.capture;
    const { progress, time } = row.cells;
    const end = c.stop_time ?? serverNow();
    const elapsed = Math.max(0, end - c.start_time);
    const total = c.spec?.duration || 0;
    if (c.status === "running") {
      if (total) {
        progress.max = total;
        progress.value = Math.min(elapsed, total);
        time.textContent = `${clock(elapsed)} of ${clock(total)} · ` +
          `${human(Math.max(0, total - elapsed))} left`;
      } else {
        progress.removeAttribute("value"); // indeterminate: runs until stopped
        time.textContent = `${clock(elapsed)} · until stopped`;
      }
    } else {
      progress.max = 1;
      progress.value = 1;
      time.textContent = `ran ${clock(elapsed)} · from ${when(c.start_time)}`;
    }
    progress.hidden = c.status !== "running";
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
    this.captures = this.captures.filter((c) => c.id !== id);
    $("#captures-empty").hidden = this.captures.length > 0;
    $("#captures-table").hidden = this.captures.length === 0;
    this.notify(`The capture of ${name} no longer exists (deleted elsewhere).`, "warn");
    this.onChange();
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
      this.fill(row);
      this.notify(`Stopped the capture of ${capture.workload_name}: ` +
        `${count(capture.stats?.captured)} packets.`);
      row.cells.download.focus();
    } catch (err) {
      row.busy = null;
      if (err.notFound) return this.vanished(id);
      if (!err.unauthorized) this.showRowError(id, describe(err, "stop the capture"));
      this.fill(row);
    } finally {
      row.cells.stop.textContent = "Stop";
      this.schedule(0);
    }
  }

  /** Fetch the pcap with the token header and hand it to the browser's save dialog. */
  async download(id) {
    const row = this.rows.get(id);
    if (!row) return;
    const button = row.cells.download;
    button.disabled = true;
    button.textContent = "Downloading…";
    say(row.cells.error, "");
    try {
      const response = await request("GET", `/api/captures/${encodeURIComponent(id)}/pcap`,
        { raw: true, timeout: 10 * 60 * 1000 });
      const blob = await response.blob();
      const name = fileName(response.headers.get("Content-Disposition"), row.capture);
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      this.notify(`Downloaded ${name} (${bytes(blob.size)}).`);
    } catch (err) {
      if (err.notFound) return this.vanished(id);
      if (!err.unauthorized) this.showRowError(id, describe(err, "download the pcap"));
    } finally {
      button.disabled = false;
      button.textContent = "Download";
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
      this.captures = this.captures.filter((x) => x.id !== id);
      this.show(this.captures);
      this.notify(`Deleted the capture of ${c.workload_name}.`);
    } catch (err) {
      if (err.notFound) return this.vanished(id);
      if (!err.unauthorized) this.showRowError(id, describe(err, "delete the capture"));
    } finally {
      row.busy = null;
      row.cells.remove.disabled = !this.canWrite();
    }
  }
}

/** The server's file name (Content-Disposition), else "<container>-<YYYYmmdd-HHMMSS>.pcap". */
export function fileName(disposition, capture) {
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition || "");
  let name = match ? decodeURIComponent(match[1]) : "";
  if (!name) name = `${capture.workload_name || "capture"}-${stamp(capture.start_time)}.pcap`;
  return name.replace(/[\\/:*?"<>|\x00-\x1f]+/g, "_");
}
