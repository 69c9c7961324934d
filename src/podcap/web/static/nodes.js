// The nodes of the cluster: one row per agent (GET /api/agents), refreshed every 5 s, with
// "last seen" moving every second in between. Admins may revoke a remote agent; the agent inside
// `podcap serve` (last_seen null) cannot be revoked. Join tokens: join-token.js.

import { describe, del, get, serverNow } from "./api.js";
import { confirmDialog } from "./confirm.js";
import { $, h, keepingFocus, replaceChildren, say } from "./dom.js";
import { ago, when } from "./format.js";

const REFRESH_MS = 5000;
const HIDDEN_MS = 15000; // background tab

export const shortId = (id) => (id || "").slice(0, 8);

export class NodeList {
  /** `isAdmin()` shows the admin buttons; `notify(text, kind)` says what happened. */
  constructor({ notify, isAdmin }) {
    this.notify = notify;
    this.isAdmin = isAdmin;
    this.items = [];
    this.loaded = false;
    this.lastKey = "";
    this.timer = null;
    this.ticker = null;
    this.active = false;
    this.body = $("#nodes-body");
    this.error = $("#nodes-error");
    this.summary = $("#nodes-count");
    $("#refresh-nodes").addEventListener("click", () => this.refresh());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.active) this.schedule(0);
    });
  }

  start() {
    this.stop();
    this.active = true;
    $("#join-open").hidden = !this.isAdmin();
    this.schedule(0);
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  stop() {
    this.active = false;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.timer = null;
  }

  schedule(ms) {
    clearTimeout(this.timer);
    if (!this.active) return;
    this.timer = setTimeout(async () => {
      await this.refresh();
      this.schedule(document.hidden ? HIDDEN_MS : REFRESH_MS);
    }, ms);
  }

  async refresh() {
    if (this.refreshing) return; // Refresh pressed while the timer's request is still out
    this.refreshing = true;
    try {
      const { agents } = await get("/api/agents", { timeout: 10000 });
      this.items = agents || [];
      this.loaded = true;
      say(this.error, "");
      this.render();
    } catch (err) {
      if (err.unauthorized) return;
      say(this.error, describe(err, "list the nodes"), "warn");
      if (!this.loaded) this.render(true);
    } finally {
      this.refreshing = false;
    }
  }

  /** Re-render when the list changed (or when `force`); "last seen" moves in tick(). */
  render(force = false) {
    const rows = [...this.items].sort((a, b) => a.node.localeCompare(b.node) ||
      a.id.localeCompare(b.id));
    const key = JSON.stringify([this.isAdmin(), rows.map((a) => ({ ...a, last_seen: null })),
      rows.map((a) => a.last_seen === null)]);
    if (force || key !== this.lastKey) {
      this.lastKey = key;
      keepingFocus(() => this.draw(rows));
    }
    for (const a of rows) { // last_seen moves at every heartbeat: no redraw for that
      const seen = this.body.querySelector(`tr[data-agent-id="${CSS.escape(a.id)}"] [data-seen]`);
      if (seen && a.last_seen !== null) {
        seen.dataset.seen = a.last_seen;
        seen.title = when(a.last_seen);
      }
    }
    this.tick();
  }

  draw(rows) {
    const down = rows.filter((a) => !a.connected).length;
    if (!this.loaded) this.summary.textContent = "Loading nodes…";
    else if (!rows.length) {
      this.summary.textContent = "No agent has joined yet. Create a join token and run " +
        "podcap agent on a node.";
    } else {
      this.summary.textContent = `${rows.length} node${rows.length === 1 ? "" : "s"}` +
        (down ? ` · ${down} disconnected.` : ", all connected.");
    }
    $("#nodes-table").hidden = !rows.length;
    replaceChildren(this.body, rows.map((a) => this.row(a)));
  }

  row(a) {
    const local = a.last_seen === null; // the agent inside `podcap serve`
    const state = a.connected ? "connected" : "disconnected";
    const revoke = this.isAdmin() && !local ? h("button", {
      type: "button", class: "danger", dataset: { focusKey: `revoke-${a.id}`, action: "revoke" },
      "aria-label": `Revoke the agent of node ${a.node}`, onclick: () => this.revoke(a),
    }, "Revoke") : null;
    return h("tr", { dataset: { agentId: a.id, node: a.node } },
      h("td", { "data-label": "Node" }, h("span", { class: "name" }, a.node),
        local ? h("span", { class: "tag" }, "in this server") : null),
      h("td", { "data-label": "Agent id" },
        h("span", { class: "mono", title: a.id }, shortId(a.id))),
      h("td", { "data-label": "Version" }, a.version || "—"),
      h("td", { "data-label": "Runtimes" }, (a.runtimes || []).join(", ") || "—"),
      h("td", { "data-label": "Joined" }, when(a.joined) || "—"),
      h("td", { "data-label": "Last seen" }, local ? h("span", { class: "muted" }, "—")
        : h("span", { dataset: { seen: a.last_seen }, title: when(a.last_seen) })),
      h("td", { "data-label": "State" },
        h("span", { class: `badge node-${state}` }, state)),
      h("td", { class: "actions", "data-label": "" }, revoke),
    );
  }

  /** "12 s ago" moves every second between refreshes. */
  tick() {
    for (const el of this.body.querySelectorAll("[data-seen]")) {
      el.textContent = ago(serverNow() - Number(el.dataset.seen));
    }
  }

  revokeButton(id) {
    return this.body.querySelector(`[data-focus-key="${CSS.escape(`revoke-${id}`)}"]`);
  }

  async revoke(agent) {
    const ok = await confirmDialog({
      title: `Revoke the agent of node ${agent.node}?`,
      text: `Its certificate stops working at once and the node leaves this list, with its ` +
        "containers and captures. To bring it back, join it again with a new join token.",
      confirm: "Revoke",
    });
    const button = this.revokeButton(agent.id);
    if (!ok) { button?.focus(); return; }
    say(this.error, "");
    if (button) { button.disabled = true; button.textContent = "Revoking…"; }
    try {
      await del(`/api/agents/${encodeURIComponent(agent.id)}`, { timeout: 30000 });
      this.items = this.items.filter((a) => a.id !== agent.id);
      this.notify(`Revoked the agent of node ${agent.node}.`);
    } catch (err) {
      if (err.unauthorized) return;
      if (err.notFound) {
        this.items = this.items.filter((a) => a.id !== agent.id);
        this.notify(`The agent of node ${agent.node} no longer exists.`, "warn");
      } else {
        say(this.error, describe(err, `revoke the agent of node ${agent.node}`), "error");
      }
    }
    this.render(true);
    if (document.activeElement === document.body) {
      (this.revokeButton(agent.id) || $("#nodes-title")).focus();
    }
    this.refresh();
  }
}
