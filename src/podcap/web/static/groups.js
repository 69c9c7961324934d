// Capture groups (docs/UI.md): start one from the containers table (the picked containers, a
// namespace, a label selector, or a combination), list groups as one row each that expands to
// its members (and the containers skipped, with the reason), stop, delete, and download the
// group as ONE pcapng. Self-contained: it starts when the signed-in view shows and stops when it
// hides, so app.js needs no wiring.

import { del, describe, get, post, request } from "./api.js";
import { confirmDialog } from "./confirm.js";
import { $, h, replaceChildren, say } from "./dom.js";
import { bytes, count, when } from "./format.js";
import { notify, PolledList } from "./polled-list.js";
import { picked, rowKey } from "./workloads.js";

class GroupList extends PolledList {
  constructor() {
    super({ body: "#groups-body", error: "#groups-error", path: "/api/capture-groups",
            key: "groups", what: "capture groups" });
  }

  ready() { $("#group-open").disabled = !this.canWrite(); }

  shown() { $("#groups-section").hidden = !this.items.length; }

  add(group) {
    this.items = [group, ...this.items.filter((g) => g.id !== group.id)];
    this.render(true);
  }

  rows(g) {
    const expanded = this.open.has(g.id);
    const toggle = h("button", {
      type: "button", class: "expander", "aria-expanded": String(expanded),
      dataset: { focusKey: `group-toggle-${g.id}` },
      "aria-label": `Members of group ${g.selector_text}`,
      onclick: () => {
        if (expanded) this.open.delete(g.id); else this.open.add(g.id);
        this.render(true);
      },
    }, expanded ? "▾" : "▸");
    const running = g.status === "running";
    const actions = [
      running && this.canWrite() ? h("button", {
        type: "button", dataset: { action: "stop", focusKey: `group-stop-${g.id}` },
        onclick: () => this.act(g, "stop"),
      }, "Stop") : null,
      this.canDownload() ? h("button", {
        type: "button", dataset: { action: "download" },
        "aria-label": `Download group ${g.selector_text} as pcapng`,
        onclick: () => this.download(g),
      }, "pcapng") : null,
      this.canWrite() ? h("button", {
        type: "button", class: "danger", dataset: { action: "delete" },
        onclick: () => this.act(g, "delete"),
      }, "Delete") : null,
    ];
    const row = h("tr", { class: "group-row", dataset: { groupId: g.id } },
      h("td", { "data-label": "Group" }, toggle, " ",
        h("span", { class: "mono" }, g.selector_text),
        h("div", { class: "muted small" }, `by ${g.owner}`)),
      h("td", { "data-label": "Status", dataset: { field: "status" } },
        h("span", { class: `badge status-${g.status}` }, g.status),
        g.stop_reason ? h("div", { class: "muted small" }, g.stop_reason) : null),
      h("td", { "data-label": "Members", dataset: { field: "members" } },
        `${g.running} running of ${g.members.length}`,
        g.skipped.length ? h("div", { class: "muted small" }, `${g.skipped.length} skipped`)
          : null),
      h("td", { class: "num", "data-label": "Packets", dataset: { field: "packets" } },
        count(g.stats.captured)),
      h("td", { class: "num", "data-label": "Bytes" }, bytes(g.stats.bytes)),
      h("td", { "data-label": "Started" }, when(g.start_time)),
      h("td", { class: "actions", "data-label": "" }, actions),
    );
    if (!expanded) return row;
    const members = g.members.map((m) => h("tr", {
      class: "member-row", dataset: { memberOf: g.id, captureId: m.capture_id } },
      h("td", { class: "mono", "data-label": "Container" }, m.if_name),
      h("td", { "data-label": "Status" }, h("span", { class: `badge status-${m.status}` },
        m.status)),
      h("td", { "data-label": "Node" }, m.node),
      h("td", { class: "num", "data-label": "Packets" },
        count(m.capture?.stats?.captured ?? 0)),
      h("td", { class: "num", "data-label": "Bytes" }, bytes(m.capture?.size ?? 0)),
      h("td", { "data-label": "Joined" }, when(m.joined)),
      h("td", {}, "")));
    const skipped = g.skipped.map((s) => h("tr", {
      class: "member-row skipped", dataset: { memberOf: g.id } },
      h("td", { class: "mono", "data-label": "Container" }, s.workload_name),
      h("td", { colspan: 6, "data-label": "Skipped" }, `Skipped: ${s.reason}`)));
    const server = location.origin + location.pathname.replace(/[^/]*$/, "");
    const live = h("tr", { class: "member-row follow", dataset: { memberOf: g.id } },
      h("td", { colspan: 7 }, "Follow live in Wireshark: ",
        h("code", { class: "mono", dataset: { field: "follow-command" } },
          `podcap --server ${server} group get ${g.id} --follow -o - | wireshark -k -i -`)));
    return [row, ...members, ...skipped, ...(this.canDownload() ? [live] : [])];
  }

  async act(g, what) {
    if (what === "delete") {
      const ok = await confirmDialog({
        title: "Delete capture group?",
        text: `The group ${g.selector_text} and its ${g.members.length} captures and their files `
          + "are removed.", confirm: "Delete" });
      if (!ok) return;
    }
    try {
      if (what === "stop") this.add((await post(`/api/capture-groups/${g.id}/stop`)).group);
      else {
        await del(`/api/capture-groups/${g.id}`);
        this.items = this.items.filter((x) => x.id !== g.id);
        this.render(true);
      }
      notify(what === "stop" ? "Capture group stopped." : "Capture group deleted.");
    } catch (err) {
      if (!err.unauthorized) notify(describe(err, `${what} the capture group`), "error");
    }
  }

  /** A one-use ticket, then a plain link: the browser streams the pcapng straight to disk. */
  async download(g) {
    try {
      const ticket = await request("POST", `/api/capture-groups/${g.id}/ticket`);
      const link = h("a", { href: ticket.url.replace(/^\//, ""), download: ticket.name,
        hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (err) {
      if (!err.unauthorized) notify(describe(err, "download the capture group"), "error");
    }
  }
}

/** The "Capture group…" dialog: every part filled in must hold. */
class GroupDialog {
  constructor(list) {
    this.list = list;
    this.dialog = $("#group-dialog");
    this.form = $("#group-form");
    this.error = $("#gf-error");
    this.workloads = [];
    $("#group-open").addEventListener("click", () => this.show());
    $("#gf-cancel").addEventListener("click", () => this.dialog.close());
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
  }

  async show() {
    say(this.error, "");
    try {
      this.workloads = (await get("/api/workloads")).workloads || [];
    } catch (err) {
      if (!err.unauthorized) notify(describe(err, "list the containers"), "error");
      return;
    }
    const chosen = this.chosen();
    $("#gf-picked").checked = chosen.length > 0;
    $("#gf-picked").disabled = !chosen.length;
    $("#gf-picked-text").textContent = chosen.length
      ? `Only the ${chosen.length} picked: ${chosen.map((w) => w.name).join(", ")}`
      : "Only picked containers (tick them in the Containers table)";
    const spaces = [...new Set(this.workloads.map((w) => w.namespace).filter(Boolean))].sort();
    const select = $("#gf-namespace");
    const keep = select.value;
    replaceChildren(select, h("option", { value: "" }, "any namespace"),
      spaces.map((ns) => h("option", { value: ns }, ns)));
    select.value = spaces.includes(keep) ? keep : "";
    this.dialog.showModal();
    (chosen.length ? $("#gf-picked") : $("#gf-labels")).focus();
  }

  chosen() {
    return this.workloads.filter((w) => picked.has(rowKey(w)));
  }

  async submit() {
    const body = {
      workloads: $("#gf-picked").checked ? this.chosen().map((w) => w.id) : [],
      namespace: $("#gf-namespace").value,
      labels: $("#gf-labels").value.trim(),
      duration: Number($("#gf-duration").value || 0),
      filter: $("#gf-filter").value.trim(),
    };
    if (!body.workloads.length && !body.namespace && !body.labels) {
      say(this.error, "Pick containers, choose a namespace or write a label selector.", "error");
      return;
    }
    $("#gf-start").disabled = true;
    try {
      const { group } = await post("/api/capture-groups", body, { timeout: 60000 });
      this.dialog.close();
      this.list.open.add(group.id);
      this.list.add(group);
      notify(`Capture group started: ${group.members.length} container(s)`
        + (group.skipped.length ? `, ${group.skipped.length} skipped.` : "."));
    } catch (err) {
      if (!err.unauthorized) say(this.error, describe(err, "start the capture group"), "error");
    } finally {
      $("#gf-start").disabled = false;
    }
  }
}

const list = new GroupList();
new GroupDialog(list);
list.followSignIn();
