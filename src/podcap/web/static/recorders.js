// Flight recorders (docs/UI.md, issue 21): each recorder is a row (its selector, members
// recording, disk held, its last trigger) that expands to its members, its snapshots (each a
// download) and its last triggers; "Trigger" freezes every member now. A small form makes a
// new one. Self-contained like groups.js: it runs while the signed-in view shows.

import { del, describe, post } from "./api.js";
import { confirmDialog } from "./confirm.js";
import { $, h, say } from "./dom.js";
import { savePcap } from "./download.js";
import { bytes, count, when } from "./format.js";
import { notify, PolledList } from "./polled-list.js";

class RecorderList extends PolledList {
  constructor() {
    super({ body: "#recorders-body", error: "#recorders-error", path: "/api/recorders",
            key: "recorders", what: "recorders" });
    $("#rf-form").addEventListener("submit", (e) => { e.preventDefault(); this.create(); });
  }

  ready() { $("#rf-form").hidden = !this.canWrite(); }

  shown() {
    $("#recorders-empty").hidden = this.items.length > 0;
    $("#recorders-table").hidden = !this.items.length;
  }

  rows(r) {
    const expanded = this.open.has(r.id);
    const toggle = h("button", {
      type: "button", class: "expander", "aria-expanded": String(expanded),
      dataset: { focusKey: `recorder-toggle-${r.id}` },
      "aria-label": `Members and snapshots of recorder ${r.name}`,
      onclick: () => {
        if (expanded) this.open.delete(r.id); else this.open.add(r.id);
        this.render(true);
      },
    }, expanded ? "▾" : "▸");
    const last = r.triggers[0];
    const row = h("tr", { class: "recorder-row", dataset: { recorderId: r.id } },
      h("td", { "data-label": "Recorder" }, toggle, " ", h("strong", {}, r.name),
        h("div", { class: "muted small mono" }, r.selector_text)),
      h("td", { "data-label": "Members", dataset: { field: "members" } },
        r.enabled ? `${r.members.length} recording` : "disabled",
        r.skipped.filter((s) => s.workload_name).length
          ? h("div", { class: "muted small" }, `${r.skipped.length} not recording`) : null),
      h("td", { "data-label": "Window" }, `${r.window_s} s + ${r.after_s} s`,
        h("div", { class: "muted small" }, `${r.bytes_mb} MB per container`)),
      h("td", { class: "num", "data-label": "Disk", dataset: { field: "disk" } },
        bytes(r.bytes.rings + r.bytes.snapshots),
        h("div", { class: "muted small" }, `${r.snapshots.length} snapshot(s)`)),
      h("td", { "data-label": "Last trigger", dataset: { field: "last-trigger" } },
        last ? [when(last.time), h("div", { class: "muted small" },
          `${last.source}: ${last.outcome}`)] : "never"),
      h("td", { class: "actions", "data-label": "" },
        this.canWrite() && r.members.length ? h("button", {
          type: "button", dataset: { action: "trigger", focusKey: `recorder-trigger-${r.id}` },
          onclick: () => this.trigger(r),
        }, "Trigger") : null,
        this.canWrite() ? h("button", {
          type: "button", class: "danger", dataset: { action: "delete" },
          onclick: () => this.remove(r),
        }, "Delete") : null),
    );
    if (!expanded) return row;
    const members = r.members.map((m) => h("tr", {
      class: "member-row", dataset: { memberOf: r.id, captureId: m.capture_id } },
      h("td", { class: "mono", "data-label": "Container" }, m.workload_name),
      h("td", { "data-label": "Status" }, h("span", { class: `badge status-${m.status}` },
        m.status)),
      h("td", { "data-label": "Node" }, m.node),
      h("td", { class: "num", "data-label": "Held" }, bytes(m.bytes)),
      h("td", { class: "num", "data-label": "Packets" }, count(m.captured),
        m.dropped ? h("span", { class: "muted small" }, ` (${count(m.dropped)} dropped)`) : null),
      h("td", {}, "")));
    const snaps = r.snapshots.map((s) => h("tr", {
      class: "member-row snapshot", dataset: { snapshotOf: r.id, captureId: s.capture_id } },
      h("td", { class: "mono", "data-label": "Snapshot" }, s.workload_name),
      h("td", { "data-label": "Reason", colspan: 2 }, s.reason),
      h("td", { class: "num", "data-label": "Size" }, bytes(s.size)),
      h("td", { "data-label": "Triggered" }, when(s.triggered)),
      h("td", { class: "actions" }, this.canDownload() ? h("button", {
        type: "button", dataset: { action: "download" },
        "aria-label": `Download the snapshot of ${s.workload_name}`,
        onclick: () => this.download(s),
      }, "Download") : null)));
    const triggers = r.triggers.slice(0, 5).map((t) => h("tr", {
      class: "member-row trigger", dataset: { triggerOf: r.id } },
      h("td", { "data-label": "Trigger" }, when(t.time)),
      h("td", { colspan: 5, class: "muted small" },
        `${t.source} · ${t.workload_name}: ${t.outcome} — ${t.detail}`)));
    return [row, ...members, ...snaps, ...triggers];
  }

  async trigger(r) {
    try {
      const { snapshots } = await post(`/api/recorders/${r.id}/trigger`, {});
      this.open.add(r.id);
      notify(`Recorder ${r.name} triggered: ${snapshots.length} snapshot(s) in ${r.after_s} s.`);
      this.refresh();
    } catch (err) {
      if (!err.unauthorized) notify(describe(err, "trigger the recorder"), "error");
    }
  }

  async remove(r) {
    const ok = await confirmDialog({
      title: "Delete recorder?", confirm: "Delete",
      text: `The recorder ${r.name} and its rings go; its ${r.snapshots.length} snapshot(s) `
        + "stay as captures." });
    if (!ok) return;
    try {
      await del(`/api/recorders/${r.id}`);
      this.items = this.items.filter((x) => x.id !== r.id);
      this.render(true);
      notify(`Recorder ${r.name} deleted.`);
    } catch (err) {
      if (!err.unauthorized) notify(describe(err, "delete the recorder"), "error");
    }
  }

  async download(s) {
    try {
      await savePcap({ ...s, id: s.capture_id });
    } catch (err) {
      if (!err.unauthorized) notify(describe(err, "download the snapshot"), "error");
    }
  }

  async create() {
    const body = {
      name: $("#rf-name").value.trim(),
      labels: $("#rf-labels").value.trim(),
      namespace: $("#rf-namespace").value.trim(),
      window_s: Number($("#rf-window").value || 60),
      after_s: Number($("#rf-after").value || 0),
      bytes_mb: Number($("#rf-bytes").value || 20),
    };
    try {
      const { recorder } = await post("/api/recorders", body, { timeout: 60000 });
      say($("#rf-error"), "");
      this.open.add(recorder.id);
      this.items = [...this.items.filter((x) => x.id !== recorder.id), recorder];
      this.render(true);
      notify(`Recorder ${recorder.name}: ${recorder.members.length} container(s) recording.`);
    } catch (err) {
      if (!err.unauthorized) say($("#rf-error"), describe(err, "create the recorder"), "error");
    }
  }
}

new RecorderList().followSignIn();
