// One row of the captures table: built once per capture, then its cells are updated in place
// on every refresh (so focus and messages in the row survive).

import { serverNow } from "./api.js";
import { h } from "./dom.js";
import { bytes, clock, count, duration as human, when } from "./format.js";
import { detailButton } from "./capture-detail.js";
import { followButton } from "./follow.js";
import { netstateButton } from "./netstate.js";

/** The row's elements; `on*` get the capture id. */
export function makeRow(capture, { onStop, onDownload, onDelete }) {
  const id = capture.id;
  const label = capture.workload_name || capture.workload_id?.slice(0, 12) || id;
  const cells = {
    name: h("span", { class: "name" }),
    where: h("div", { class: "muted small" }),
    node: h("span", { dataset: { field: "node" } }),
    status: h("span", { class: "badge" }),
    stale: h("span", { class: "badge stale" }, "last known"), // in the row only when stale
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
      "aria-label": `Stop capture of ${label}`, onclick: () => onStop(id) }, "Stop"),
    download: h("button", { type: "button", dataset: { action: "download" },
      "aria-label": `Download pcap of ${label}`, onclick: () => onDownload(id) }, "Download"),
    remove: h("button", { type: "button", class: "danger", dataset: { action: "delete" },
      "aria-label": `Delete capture of ${label}`, onclick: () => onDelete(id) }, "Delete"),
    error: h("p", { class: "row-error", role: "alert", hidden: true }),
    follow: followButton(id, label), // follow.js, netstate.js: dialogs of their own
    netstate: netstateButton(id, label),
    details: detailButton(id, label), // capture-detail.js: charts, conversations, protocols
  };
  cells.progress.setAttribute("aria-label", `Time of capture of ${label}`);
  const tr = h("tr", { dataset: { captureId: id } },
    h("td", { "data-label": "Container" }, cells.name, cells.where),
    h("td", { "data-label": "Node" }, cells.node),
    h("td", { "data-label": "Status" }, cells.status, cells.reason),
    h("td", { "data-label": "Filter" }, cells.filter, cells.files),
    h("td", { "data-label": "Packets", class: "num" }, cells.packets, cells.received),
    h("td", { "data-label": "Bytes", class: "num" }, cells.bytes),
    h("td", { "data-label": "Drops", class: "num" }, cells.drops),
    h("td", { "data-label": "Time", class: "time" }, cells.progress, cells.time),
    h("td", { class: "actions", "data-label": "" },
      h("div", { class: "buttons" }, cells.stop, cells.download, cells.details, cells.follow,
        cells.netstate, cells.remove), cells.error),
  );
  return { tr, cells, capture };
}

/**
 * Show `row.capture`. Stop and Delete are disabled for accounts that may only read, Download
 * for accounts without the download right; Stop, Download and Delete for a capture shown from
 * its last known state (its node does not answer).
 */
export function fillRow(row, canWrite, canDownload = true) {
  const c = row.capture;
  const { cells } = row;
  const stats = c.stats || {};
  const spec = c.spec || {};
  cells.name.textContent = c.workload_name || c.workload_id?.slice(0, 12) || "?";
  cells.where.textContent = [c.pod_name, c.namespace].filter(Boolean).join(" · ");
  cells.node.textContent = c.node || "—";
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
  fillTime(row);
  const running = c.status === "running";
  const stale = Boolean(c.stale);
  if (!stale) cells.stale.remove();
  else if (!cells.stale.isConnected) cells.status.after(cells.stale);
  cells.stale.title = stale ? `Node ${c.node || "?"} does not answer: this is the capture's ` +
    "last known state." : "";
  const why = stale ? `Node ${c.node || "?"} is not answering: try again when it is back.` : "";
  // The title is the tooltip and, the buttons being named by aria-label, their description.
  for (const button of [cells.stop, cells.download, cells.remove]) button.title = why;
  if (!canDownload && !stale) {
    cells.download.title = "Your account has no download right: packet data needs it " +
      "(an admin grants it).";
  }
  cells.stop.disabled = !running || row.busy === "stop" || !canWrite || stale;
  cells.stop.hidden = !running;
  cells.download.disabled = row.busy === "download" || stale || !canDownload;
  cells.remove.disabled = row.busy === "delete" || !canWrite || stale;
  cells.follow.disabled = stale || !canDownload;
  cells.netstate.disabled = stale;
  cells.details.disabled = stale;
  row.tr.classList.toggle("is-running", running);
  row.tr.classList.toggle("is-stale", stale);
}

/** Elapsed and remaining time, and the progress bar (server clock, see api.serverNow). */
export function fillTime(row) {
  const c = row.capture;
  const { progress, time } = row.cells;
  const end = c.stop_time ?? serverNow();
  const elapsed = Math.max(0, end - c.start_time);
  const total = c.spec?.duration || 0;
  if (c.stale && c.status === "running") {
    // Its node does not answer: whether it still runs is unknown, so no clock moves.
    progress.hidden = true;
    time.textContent = `from ${when(c.start_time)} · now unknown`;
    return;
  }
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
