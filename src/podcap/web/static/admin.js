// The admin page (admins only): users (GET/POST/PATCH/DELETE /api/users, unlock) and the audit
// log (GET /api/audit, newest first, filtered by event and user, 50 a page). Any change to a
// user ends its sessions on the server; the table says so in the notice.

import { del, describe, get, patch, post } from "./api.js";
import { confirmDialog } from "./confirm.js";
import { $, h, keepingFocus, replaceChildren, say } from "./dom.js";
import { when } from "./format.js";

const PAGE = 50;
const EVENTS = ["login", "logout", "capture.start", "capture.stop", "capture.delete", "download",
  "user.add", "user.change", "user.password", "user.remove", "user.unlock", "agent.revoke",
  "agent.token"];

export class AdminPage {
  /** `isAdmin()` shows the page; `me()` is the signed-in user's name; `notify(text, kind)`. */
  constructor({ notify, isAdmin, me }) {
    Object.assign(this, { notify, isAdmin, me });
    this.offset = 0;
    this.total = 0;
    this.auditAsked = 0; // the newest audit request: an older answer arriving later is dropped
    this.section = $("#admin-section");
    for (const event of EVENTS) $("#audit-event").append(h("option", { value: event }, event));
    $("#refresh-users").addEventListener("click", () => this.refresh());
    $("#user-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.addUser();
    });
    $("#audit-event").addEventListener("change", () => this.loadAudit(0));
    $("#audit-user").addEventListener("change", () => this.loadAudit(0));
    $("#audit-older").addEventListener("click", () => this.loadAudit(this.offset + PAGE));
    $("#audit-newer").addEventListener("click",
      () => this.loadAudit(Math.max(0, this.offset - PAGE)));
  }

  start() {
    this.section.hidden = !this.isAdmin();
    if (!this.section.hidden) this.refresh();
  }

  stop() { this.section.hidden = true; }

  async refresh() {
    await Promise.all([this.loadUsers(), this.loadAudit(this.offset)]);
  }

  async loadUsers() {
    try {
      const { users } = await get("/api/users");
      say($("#users-error"), "");
      keepingFocus(() => replaceChildren($("#users-body"), users.map((u) => this.row(u))));
    } catch (err) {
      if (!err.unauthorized) say($("#users-error"), describe(err, "load the users"), "error");
    }
  }

  row(u) {
    const name = u.username;
    const actions = [];
    if (u.locked) {
      actions.push(h("button", { type: "button", dataset: { focusKey: `unlock-${name}` },
        "aria-label": `Unlock ${name}`, onclick: () => this.act(
          () => post(`/api/users/${encodeURIComponent(name)}/unlock`), `${name} unlocked.`,
          `unlock ${name}`) }, "Unlock"));
    }
    actions.push(h("button", { type: "button", dataset: { focusKey: `download-${name}` },
      "aria-label": `${u.download ? "Take" : "Grant"} the download right of ${name}`,
      disabled: u.role === "admin",
      onclick: () => this.act(
        () => patch(`/api/users/${encodeURIComponent(name)}`, { download: !u.download }),
        `${name} ${u.download ? "may no longer" : "may now"} download packet data; its sessions ` +
        "ended.", `change ${name}`) }, u.download ? "No download" : "Allow download"));
    if (name !== this.me()) {
      actions.push(h("button", { type: "button", class: "danger",
        "aria-label": `Remove ${name}`, onclick: () => this.remove(name) }, "Remove"));
    }
    return h("tr", { dataset: { user: name } },
      h("th", { scope: "row" }, name),
      h("td", {}, u.role),
      h("td", {}, u.namespaces.length ? u.namespaces.join(", ") : "all"),
      h("td", {}, u.download ? "yes" : "no"),
      h("td", { class: "num" }, String(u.failed_logins)),
      h("td", { class: u.locked ? "locked" : "" }, u.locked ? "locked" : "ok"),
      h("td", { class: "actions" }, actions));
  }

  async act(call, done, action) {
    try {
      await call();
      this.notify(done);
    } catch (err) {
      this.notify(describe(err, action), "error");
    }
    await this.refresh();
  }

  async remove(name) {
    const sure = await confirmDialog({ title: `Remove the user ${name}?`,
      text: "Its sessions end at once. Its captures stay.", confirm: "Remove" });
    if (sure) await this.act(() => del(`/api/users/${encodeURIComponent(name)}`),
      `${name} removed.`, `remove ${name}`);
  }

  async addUser() {
    const form = $("#user-form");
    const error = $("#uf-error");
    const username = $("#uf-username").value.trim();
    const password = $("#uf-password").value;
    if (!username || password.length < 8) {
      say(error, "Give a user name and a passphrase of 8 or more characters.", "error");
      return;
    }
    const namespaces = $("#uf-namespaces").value.split(",").map((n) => n.trim()).filter(Boolean);
    try {
      await post("/api/users", { username, password, role: $("#uf-role").value, namespaces,
        download: $("#uf-download").checked });
      say(error, "");
      form.reset();
      this.notify(`User ${username} added.`);
      await this.refresh();
    } catch (err) {
      say(error, describe(err, `add ${username}`), "error");
    }
  }

  async loadAudit(offset) {
    const params = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if ($("#audit-event").value) params.set("event", $("#audit-event").value);
    if ($("#audit-user").value.trim()) params.set("username", $("#audit-user").value.trim());
    const asked = ++this.auditAsked;
    try {
      const page = await get(`/api/audit?${params}`);
      // Answers can cross (a filter changed while the last page loaded): only the newest
      // request's is shown, else an older filter's count stays on screen.
      if (asked !== this.auditAsked) return;
      this.offset = offset;
      this.total = page.total;
      say($("#audit-error"), "");
      const last = Math.min(offset + page.events.length, page.total);
      $("#audit-count").textContent = page.total
        ? `Events ${offset + 1}–${last} of ${page.total}, newest first.` : "No events.";
      $("#audit-older").disabled = last >= page.total;
      $("#audit-newer").disabled = offset === 0;
      replaceChildren($("#audit-body"), page.events.map((e) => h("tr", { dataset: { event: e.event } },
        h("td", {}, when(e.time)),
        h("td", {}, e.event),
        h("td", {}, e.username || "-"),
        h("td", { class: "mono" }, e.source || "-"),
        h("td", { class: e.ok ? "" : "failed-event" }, e.ok ? "ok" : "failed"),
        h("td", {}, [e.capture_id.slice(0, 8), e.workload, e.namespace].filter(Boolean).join(" · ")
          || "-"),
        h("td", { class: "num" }, e.bytes ? String(e.bytes) : ""),
        h("td", {}, e.detail))));
    } catch (err) {
      if (!err.unauthorized) say($("#audit-error"), describe(err, "load the audit log"), "error");
    }
  }
}
