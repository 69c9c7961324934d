// The capture detail view: what a capture holds before anyone downloads it (issue 13).
// A dialog with the live rate chart (tcpdump's counters each second, drops marked), and the
// summary the capture's node computes from its files: timeline, conversations (a click
// downloads only that conversation), protocol mix, DNS and TLS server names. It polls while
// the capture runs or the node is still reading files, and stops polling when it closes.

import { describe, get } from "./api.js";
import { h, say } from "./dom.js";
import { bytes, count, when } from "./format.js";
import {
  conversationLabel, conversationRows, nameList, protocolRows, saveConversation,
} from "./insight.js";
import { LiveChart, TimelineChart } from "./rate-chart.js";

const SERIES_MS = 1000;
const SUMMARY_MS = 2000;

function table(id, caption, heads) {
  return h("div", { class: "scroll" }, h("table", { id, class: "grid" },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, heads.map(([text, cls]) => h("th", { scope: "col", class: cls },
      text)))),
    h("tbody", {})));
}

let detail = null;

/** The row's "Details…" button (capture-row.js). */
export function detailButton(id, label) {
  return h("button", { type: "button", dataset: { action: "details" },
    "aria-label": `Details of capture of ${label}`, onclick: () => openDetail(id, label) },
  "Details…");
}

/** Open the detail view of one capture (its id; `label` until the capture is read). */
export async function openDetail(id, label) {
  detail = detail || new CaptureDetail();
  await detail.open(id, label);
}

export class CaptureDetail {
  constructor() {
    this.dialog = null;
    this.timers = [];
    this.download_ok = true;
  }

  canDownload() { return this.download_ok; }

  notify(text) { say(this.parts.note, text, "ok"); }

  build() {
    const el = (id, tag = "div", props = {}) => h(tag, { id, ...props });
    this.parts = {
      title: el("detail-title", "h2"),
      where: el("detail-where", "p", { class: "muted small" }),
      error: el("detail-error", "p", { class: "message", role: "alert", hidden: true }),
      note: el("detail-note", "p", { class: "message", role: "status", hidden: true }),
      live: el("detail-live", "div", { class: "chart", dataset: { points: "0" } }),
      liveNote: el("detail-live-note", "p", { class: "muted small" }),
      totals: el("detail-totals", "p", { class: "small", "aria-live": "polite" }),
      wrap: el("detail-wrap", "p", { class: "message", dataset: { kind: "warn" }, hidden: true }),
      timeline: el("detail-timeline", "div", { class: "chart", dataset: { points: "0" } }),
      convs: table("detail-conversations", "Conversations", [["Proto"], ["Address A"],
        ["Address B"], ["Packets", "num"], ["Bytes", "num"], ["A→B · B→A", "num"],
        ["First seen"], ["Last seen"], [h("span", { class: "sr-only" }, "Download")]]),
      convNote: el("detail-conv-note", "p", { class: "muted small" }),
      protocols: table("detail-protocols", "Protocol mix", [["Layer"], ["Protocol"],
        ["Packets", "num"], ["Share", "num"], ["Bytes", "num"]]),
      dns: el("detail-dns", "ul", { class: "names" }),
      tls: el("detail-tls", "ul", { class: "names" }),
      close: h("button", { type: "button", onclick: () => this.close() }, "Close"),
    };
    const p = this.parts;
    this.dialog = h("dialog", { id: "detail-dialog", class: "detail",
      "aria-labelledby": "detail-title" },
    h("div", { class: "detail-head" }, h("div", {}, p.title, p.where), p.close),
    p.error, p.note,
    h("section", { "aria-labelledby": "detail-live-title" },
      h("h3", { id: "detail-live-title" }, "Live rate"), p.live, p.liveNote),
    h("section", { "aria-labelledby": "detail-summary-title" },
      h("h3", { id: "detail-summary-title" }, "What the files hold"), p.totals, p.wrap,
      h("h4", {}, "Timeline"), p.timeline,
      h("h4", {}, "Conversations"), p.convNote, p.convs,
      h("div", { class: "detail-cols" },
        h("div", {}, h("h4", {}, "Protocols"), p.protocols),
        h("div", {}, h("h4", {}, "DNS names queried"), p.dns,
          h("h4", {}, "TLS server names"), p.tls))));
    this.dialog.addEventListener("close", () => this.stopPolling());
    document.body.append(this.dialog);
  }

  async open(id, label) {
    if (!this.dialog) this.build();
    this.stopPolling();
    this.capture = { id, status: "running" };
    this.summary = null;
    const p = this.parts;
    p.title.textContent = `Capture of ${label}`;
    p.where.textContent = `id ${id}`;
    say(p.error, "");
    say(p.note, "");
    try {
      const [{ capture }, me] = await Promise.all([
        get(`/api/captures/${encodeURIComponent(id)}`), get("/api/whoami")]);
      this.capture = capture;
      this.download_ok = Boolean(me.download);
      p.where.textContent = [capture.node, capture.namespace, `id ${capture.id}`,
        `started ${when(capture.start_time)}`].filter(Boolean).join(" · ");
    } catch (err) {
      if (err.unauthorized) return;
      say(p.error, describe(err, "open the capture"), "error");
    }
    p.totals.textContent = "Reading the capture's files…";
    this.live?.destroy();
    this.timelineChart?.destroy();
    p.live.replaceChildren();
    p.timeline.replaceChildren();
    if (!this.dialog.open) this.dialog.showModal();
    this.live = new LiveChart(p.live);
    this.timelineChart = new TimelineChart(p.timeline);
    this.since = 0;
    this.active = true;
    this.pollSeries();
    this.pollSummary();
  }

  close() { this.dialog?.close(); }

  stopPolling() {
    this.active = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  later(fn, ms) {
    if (this.active) this.timers.push(setTimeout(fn, ms));
  }

  path(what) { return `/api/captures/${encodeURIComponent(this.capture.id)}/${what}`; }

  async pollSeries() {
    let running = this.capture.status === "running";
    try {
      const doc = await get(`${this.path("series")}?since=${this.since}`);
      if (!this.active) return;
      running = doc.status === "running";
      if (doc.points.length) {
        this.live.add(doc.points);
        this.since = doc.points[doc.points.length - 1][0];
      }
      const n = Number(this.parts.live.dataset.points);
      this.parts.liveNote.textContent = running
        ? `tcpdump's counters, one point a second (${count(n)} so far).`
        : n ? "The capture has ended; the rate it had while running." :
          "No rate was recorded by this node (it restarted, or the capture was short).";
    } catch (err) {
      if (!this.active || err.unauthorized) return;
      say(this.parts.error, describe(err, "read the live rate"), "warn");
    }
    if (running) this.later(() => this.pollSeries(), SERIES_MS);
  }

  async pollSummary() {
    let again = true;
    try {
      const s = await get(`${this.path("summary")}?wait=1`, { timeout: 20000 });
      if (!this.active) return;
      this.show(s);
      again = s.status === "running" || s.pending > 0;
    } catch (err) {
      if (!this.active || err.unauthorized) return;
      say(this.parts.error, describe(err, "read the capture's summary"), "warn");
      again = !err.notFound && err.status !== 403; // 403: no download right, it stays so
    }
    if (again) this.later(() => this.pollSummary(), SUMMARY_MS);
  }

  show(s) {
    const p = this.parts;
    this.summary = s;
    const span = s.first && s.last ? ` from ${when(s.first)} to ${when(s.last)}` : "";
    p.totals.textContent = `${count(s.packets)} packets, ${bytes(s.bytes)} in ` +
      `${count(s.files)} file${s.files === 1 ? "" : "s"}${span}` +
      (s.pending ? ` — still reading ${count(s.pending)} file${s.pending === 1 ? "" : "s"}…`
        : s.complete ? "." : " (updates while the capture runs).");
    say(p.wrap, s.wrapped ? `The ring of files wrapped: ${s.wrapped_reason}. The timeline and ` +
      "tables cover only the packets still on disk." : "", "warn");
    this.timelineChart.show(s.timeline);
    conversationRows(p.convs.querySelector("tbody"), s, {
      canDownload: this.canDownload(), onDownload: (c, button) => this.download(c, button),
    });
    const more = s.conversations_total - s.conversations.length;
    p.convNote.textContent = `${count(s.conversations_total)} conversation` +
      `${s.conversations_total === 1 ? "" : "s"}${more > 0 ? `, the ${count(s.conversations.length)}` +
        " with the most bytes shown" : ""}. Download saves only that conversation's packets.` +
      (s.untracked.packets ? ` ${count(s.untracked.packets)} packets are in conversations ` +
        `beyond the table's bound of ${count(s.limits.conversations)}.` : "");
    protocolRows(p.protocols.querySelector("tbody"), s);
    nameList(p.dns, s.dns, (d) => `${count(d.queries)} quer${d.queries === 1 ? "y" : "ies"}, ` +
      `${count(d.responses)} response${d.responses === 1 ? "" : "s"}`, "No DNS queries seen.");
    nameList(p.tls, s.tls, (t) => `${count(t.hellos)} ClientHello${t.hellos === 1 ? "" : "s"}`,
      "No TLS ClientHello with a server name seen.");
  }

  async download(conv, button) {
    button.disabled = true;
    try {
      const ticket = await saveConversation(this.capture.id, conv);
      this.notify(`Downloading ${ticket.name}: ${conversationLabel(conv)}.`);
    } catch (err) {
      if (!err.unauthorized) say(this.parts.error, describe(err, "download the conversation"),
        "error");
    } finally {
      button.disabled = !this.canDownload();
    }
  }
}
