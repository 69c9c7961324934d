// The summary of a capture as tables: conversations (each with a Download of only its
// packets), protocol mix, DNS names, TLS server names. Everything is built with h() from
// text: nothing from the capture is ever parsed as markup.

import { request } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { bytes, count, when } from "./format.js";

/** "10.0.0.1:80" or "[fd00::1]:80"; no port for protocols without ports. */
export function endpoint(addr, port) {
  if (port === null || port === undefined) return addr;
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

export const conversationLabel = (c) =>
  `${c.proto} ${endpoint(c.a, c.a_port)} ↔ ${endpoint(c.b, c.b_port)}`;

/** Save one conversation's packets: a one-use ticket, then a plain link (see download.js). */
export async function saveConversation(captureId, conv) {
  const body = { proto: conv.proto, a: conv.a, b: conv.b };
  if (conv.a_port !== null && conv.a_port !== undefined) {
    Object.assign(body, { a_port: conv.a_port, b_port: conv.b_port });
  }
  const ticket = await request("POST",
    `/api/captures/${encodeURIComponent(captureId)}/conversations/ticket`, { body });
  const link = h("a", { href: ticket.url.replace(/^\//, ""), download: ticket.name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  return ticket;
}

export function conversationRows(tbody, summary, { canDownload, onDownload }) {
  const rows = summary.conversations.map((c, i) => h("tr", { dataset: { index: String(i) } },
    h("td", {}, h("span", { class: "badge" }, c.proto)),
    h("td", { class: "mono" }, endpoint(c.a, c.a_port)),
    h("td", { class: "mono" }, endpoint(c.b, c.b_port)),
    h("td", { class: "num" }, count(c.packets)),
    h("td", { class: "num" }, bytes(c.bytes)),
    h("td", { class: "num small muted" }, `${count(c.packets_ab)} → · ${count(c.packets_ba)} ←`),
    h("td", { class: "small" }, when(c.first)),
    h("td", { class: "small" }, when(c.last)),
    h("td", { class: "actions" }, h("button", {
      type: "button", disabled: !canDownload,
      title: canDownload ? "Only this conversation's packets, filtered on the node"
        : "Your account has no download right",
      "aria-label": `Download conversation ${conversationLabel(c)}`,
      onclick: (event) => onDownload(c, event.currentTarget),
    }, "Download")),
  ));
  replaceChildren(tbody, rows);
}

/** Protocol mix: link, IP protocol and port rows, each with its share of the packets. */
export function protocolRows(tbody, summary) {
  const total = summary.packets || 1;
  const share = (n) => `${((100 * n) / total).toFixed(1)} %`;
  const p = summary.protocols;
  const rows = [
    ...p.link.map((r) => ["link", r.name, r.packets, r.bytes]),
    ...p.ip.map((r) => ["IP protocol", r.name, r.packets, r.bytes]),
    ...p.ports.map((r) => ["port", `${r.proto}/${r.port || "ephemeral"}${r.name && r.port
      ? ` (${r.name})` : ""}`, r.packets, r.bytes]),
  ].map(([layer, name, packets, size]) => h("tr", {},
    h("td", { class: "muted small" }, layer), h("td", {}, name),
    h("td", { class: "num" }, count(packets)), h("td", { class: "num" }, share(packets)),
    h("td", { class: "num" }, bytes(size))));
  replaceChildren(tbody, rows);
}

export function nameList(ul, items, describeItem, empty) {
  if (!items.length) {
    replaceChildren(ul, h("li", { class: "muted" }, empty));
    return;
  }
  replaceChildren(ul, items.map((item) => h("li", {},
    h("span", { class: "mono" }, item.name), " ", h("span", { class: "muted small" },
      describeItem(item)))));
}
