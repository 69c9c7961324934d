// The network-state snapshot of a capture: addresses, routes, neighbours and sockets of the
// container's namespace when the capture started (GET /api/captures/{id}/netstate), shown in a
// dialog with one collapsible section per table.

import { describe, get } from "./api.js";
import { h, replaceChildren, say } from "./dom.js";
import { when } from "./format.js";

let dialog = null;

function build() {
  const body = h("div", { class: "netstate-body" });
  const taken = h("p", { class: "muted small" });
  const error = h("p", { class: "message", role: "alert", hidden: true });
  const el = h("dialog", { id: "netstate-dialog", "aria-labelledby": "netstate-title" },
    h("h2", { id: "netstate-title" }), taken, error, body,
    h("div", { class: "dialog-actions" },
      h("button", { type: "button", onclick: () => el.close() }, "Close")));
  document.body.append(el);
  return { el, body, taken, error, title: el.querySelector("h2") };
}

const dash = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));

/** One collapsible table; `more` rows were left out of the snapshot (too many). */
function section(title, columns, rows, more = 0) {
  const table = h("table", { class: "grid netstate-table" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((v, i) =>
      h("td", { "data-label": columns[i], class: "mono" }, dash(v)))))));
  return h("details", { open: true, dataset: { section: title.toLowerCase() } },
    h("summary", {}, `${title} (${rows.length + more})`),
    rows.length ? h("div", { class: "scroll" }, table) : h("p", { class: "muted small" }, "None."),
    more ? h("p", { class: "muted small" }, `… and ${more} more, left out of the snapshot.`)
      : null);
}

/** The four sections of a snapshot document (docs/API.md has its shape). */
export function renderNetstate(doc) {
  const cut = doc.truncated || {};
  return [
    section("Addresses", ["Interface", "State", "MAC", "Addresses"],
      (doc.interfaces || []).map((i) => [i.ifname, i.state, i.mac,
        (i.addresses || []).map((a) => `${a.address}/${a.prefixlen}`).join(" ")]),
      cut.interfaces),
    section("Routes", ["Destination", "Gateway", "Device", "Source", "Metric"],
      (doc.routes || []).map((r) => [r.dst, r.gateway, r.dev, r.prefsrc, r.metric]), cut.routes),
    section("Neighbours", ["Address", "Device", "MAC", "State"],
      (doc.neighbours || []).map((n) => [n.address, n.dev, n.lladdr, n.state]), cut.neighbours),
    section("Sockets", ["Proto", "State", "Local", "Peer", "Process"],
      (doc.sockets || []).map((s) => [s.proto, s.state, s.local, s.peer,
        (s.processes || []).map((p) => `${p.name}[${p.pid}]`).join(", ")]), cut.sockets),
  ];
}

/** Open the dialog for capture `id`; `label` names its container. */
export async function openNetstate(id, label) {
  dialog ??= build();
  const d = dialog;
  d.title.textContent = `Network of ${label} at capture start`;
  d.taken.textContent = "Loading…";
  say(d.error, "");
  replaceChildren(d.body);
  d.el.showModal();
  try {
    const { netstate } = await get(`/api/captures/${encodeURIComponent(id)}/netstate`);
    d.taken.textContent = `Taken ${when(netstate.taken_at)} inside the container's network ` +
      `namespace (inode ${netstate.netns_inode}).`;
    replaceChildren(d.body, renderNetstate(netstate));
    say(d.error, (netstate.errors || []).join("; "), "warn");
  } catch (err) {
    d.taken.textContent = "";
    if (err.unauthorized) return;
    // 404 here mostly means "no snapshot" (an older capture): the server's words say which.
    say(d.error, err.notFound && err.message ? err.message : describe(err, "load the network state"),
      "warn");
  }
}

/** The row's button. */
export function netstateButton(id, label) {
  return h("button", { type: "button", dataset: { action: "netstate" },
    "aria-label": `Network state of ${label}`, onclick: () => openNetstate(id, label) },
  "Network…");
}
