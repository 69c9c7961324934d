// The containers table: search, grouping, pages of PAGE_ROWS rows, and a Capture button per row
// (disabled, with the server's reason, for containers podcap cannot capture). The list is
// fetched again only when the server's token moved (GET /api/workloads?since=: the views
// changed); otherwise a refresh costs one small answer, whatever the number of containers.

import { describe, get } from "./api.js";
import { $, h, keepingFocus, repeat, replaceChildren, say } from "./dom.js";
import { showUnreachable } from "./unreachable.js";

const REFRESH_MS = 5000;
const PAGE_ROWS = 100; // rows drawn at once: 10,000 containers never make 10,000 rows

const GROUPS = {
  "": null,
  namespace: (w) => (w.namespace ? `Namespace ${w.namespace}` : "No namespace (plain containers)"),
  pod: (w) => (w.pod_name
    ? `Pod ${w.namespace ? `${w.namespace}/` : ""}${w.pod_name}` : "Not in a pod"),
  node: (w) => `Node ${w.node || "?"}`,
};

/**
 * The table of workloads. `onCapture(workload)` opens the capture form;
 * `runningCount(workload)` says how many captures of a workload are running now.
 * A workload is one container on one node: `rowKey()` tells apart the same container id seen
 * by two agents (two agents on one engine, as in tests).
 */
export class WorkloadTable {
  constructor({ onCapture, runningCount, canWrite }) {
    this.onCapture = onCapture;
    this.runningCount = runningCount;
    this.canWrite = canWrite;
    this.items = [];
    this.token = ""; // the server's list token: sent back as `since`
    this.page = 0;
    this.loaded = false;
    this.lastKey = "";
    this.halt = null; // ends the refresh loop (dom.js repeat)
    this.body = $("#workloads-body");
    this.search = $("#search");
    this.groupBy = $("#group-by");
    this.error = $("#workloads-error");
    this.summary = $("#workloads-count");
    this.banner = $("#workloads-unreachable");
    this.search.addEventListener("input", () => { this.page = 0; this.render(true); });
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.search.value) {
        this.search.value = "";
        this.page = 0;
        this.render(true);
      }
    });
    this.pager = $("#workloads-pages");
    this.pageLabel = $("#workloads-page");
    $("#workloads-prev").addEventListener("click", () => this.turn(-1));
    $("#workloads-next").addEventListener("click", () => this.turn(1));
    this.groupBy.value = localStorage.getItem("podcap.groupBy") || "";
    this.groupBy.addEventListener("change", () => {
      localStorage.setItem("podcap.groupBy", this.groupBy.value);
      this.render(true);
    });
    $("#refresh-workloads").addEventListener("click", () => this.refresh());
  }

  start() {
    this.stop();
    this.token = ""; // a new sign-in: the list is another user's, fetched whole
    this.halt = repeat(REFRESH_MS, () => this.refresh());
  }

  stop() {
    this.halt?.();
    this.halt = null;
  }

  async refresh() {
    if (this.refreshing) return; // Refresh pressed while the timer's request is still out
    this.refreshing = true;
    try {
      const since = this.token ? `?since=${encodeURIComponent(this.token)}` : "";
      const answer = await get(`/api/workloads${since}`);
      if (answer.unchanged) {
        this.render(); // running counts may have changed; the list has not
        return;
      }
      this.items = answer.workloads || [];
      this.token = answer.token || "";
      showUnreachable(this.banner, answer.unreachable);
      this.loaded = true;
      say(this.error, "");
      this.render();
    } catch (err) {
      if (err.unauthorized) return;
      say(this.error, describe(err, "list the containers"), "error");
      if (!this.loaded) this.render(true);
    } finally {
      this.refreshing = false;
    }
  }

  /** Rows matching the search box: every word must appear in name, image, namespace, pod, IP... */
  visible() {
    const words = this.search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const rows = this.items.filter((w) => {
      const hay = [w.name, w.container_name, w.image, w.namespace, w.pod_name, w.node,
        w.id?.slice(0, 12), ...(w.ips || [])].join(" ").toLowerCase();
      return words.every((word) => hay.includes(word));
    });
    return rows.sort((a, b) => a.name.localeCompare(b.name) ||
      (a.node || "").localeCompare(b.node || ""));
  }

  /** Another page of rows, `step` pages on. */
  turn(step) {
    this.page += step;
    this.render(true);
  }

  /** Re-render when the data, the search, the page or the grouping changed (or `force`). */
  render(force = false) {
    const matching = this.visible();
    const pages = Math.max(1, Math.ceil(matching.length / PAGE_ROWS));
    this.page = Math.min(Math.max(this.page, 0), pages - 1);
    const rows = matching.slice(this.page * PAGE_ROWS, (this.page + 1) * PAGE_ROWS);
    const key = JSON.stringify([this.search.value, this.groupBy.value, this.canWrite(),
      this.page, matching.length, rows, rows.map((w) => this.runningCount(w))]);
    if (!force && key === this.lastKey) return;
    this.lastKey = key;
    this.pager.hidden = pages < 2;
    this.pageLabel.textContent = `Page ${this.page + 1} of ${pages}`;
    $("#workloads-prev").disabled = this.page === 0;
    $("#workloads-next").disabled = this.page >= pages - 1;
    keepingFocus(() => this.draw(rows, matching.length));
  }

  draw(rows, matched) {
    const total = this.items.length;
    const query = this.search.value.trim();
    if (!this.loaded) {
      this.summary.textContent = "Loading containers…";
    } else if (!total) {
      this.summary.textContent = "No containers found on any node. Start one, then press Refresh.";
    } else if (!rows.length) {
      this.summary.textContent = `No container matches “${query}” (of ${total}).`;
    } else {
      this.summary.textContent = query ? `${matched} of ${total} containers match “${query}”.`
        : `${total} container${total === 1 ? "" : "s"}.`;
    }
    $("#workloads-table").hidden = !rows.length;
    const groupOf = GROUPS[this.groupBy.value];
    const out = [];
    if (groupOf) {
      const groups = new Map();
      for (const w of rows) {
        const g = groupOf(w);
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g).push(w);
      }
      for (const [label, members] of [...groups].sort((a, b) => a[0].localeCompare(b[0]))) {
        out.push(h("tr", { class: "group" },
          h("th", { colspan: 7, scope: "rowgroup" }, label, h("span", { class: "muted" },
            ` · ${members.length}`))));
        out.push(...members.map((w) => this.row(w)));
      }
    } else {
      out.push(...rows.map((w) => this.row(w)));
    }
    replaceChildren(this.body, out);
  }

  row(w) {
    const key = rowKey(w);
    const reasonId = `reason-${key}`;
    const running = this.runningCount(w);
    const reason = w.stale ? `node ${w.node || "?"} is not answering`
      : !w.cap_sniff ? w.cap_sniff_reason || "not capturable"
        : !this.canWrite() ? "your account may only read" : "";
    const podNs = [w.pod_name, w.namespace].filter(Boolean).join(" / ");
    const button = h("button", {
      type: "button", class: reason ? "" : "primary",
      disabled: Boolean(reason),
      "aria-describedby": reason ? reasonId : null,
      "aria-label": `Capture traffic of ${w.name}`,
      dataset: { focusKey: `capture-${key}` },
      onclick: () => this.onCapture(w),
    }, "Capture…");
    return h("tr", { dataset: { workloadId: w.id, name: w.name, node: w.node || "" } },
      h("td", { "data-label": "Name" },
        h("input", {
          type: "checkbox", class: "pick", checked: picked.has(key), disabled: !w.cap_sniff,
          "aria-label": `Pick ${w.name} for a capture group`,
          dataset: { focusKey: `pick-${key}` },
          onchange: (e) => (e.target.checked ? picked.add(key) : picked.delete(key)),
        }),
        h("span", { class: "name" }, w.name),
        running ? h("span", { class: "badge running", title: "captures running now" },
          `● ${running} capturing`) : null,
        w.stale ? h("span", { class: "badge stale", title: "its node is not answering" },
          "last known") : null,
        h("div", { class: "muted mono small" }, (w.id || "").slice(0, 12))),
      h("td", { "data-label": "Image", class: "wrap" }, w.image || "—"),
      h("td", { "data-label": "Pod / namespace" }, podNs || h("span", { class: "muted" }, "—")),
      h("td", { "data-label": "Node" }, w.node || "—"),
      h("td", { "data-label": "IP", class: "mono" },
        (w.ips || []).length ? w.ips.join(", ") : h("span", { class: "muted" }, "—")),
      h("td", { "data-label": "State" },
        h("span", { class: `badge state-${w.state || "unknown"}` }, w.state || "unknown")),
      h("td", { class: "actions", "data-label": "" }, button,
        reason ? h("span", { id: reasonId, class: "reason" }, `Cannot capture: ${reason}`) : null),
    );
  }
}

/** Containers picked (by rowKey) for a capture group: groups.js reads them. */
export const picked = new Set();

/** A workload on its node: the container id, plus the agent's id when there is one. */
export const rowKey = (w) => (w.agent_id ? `${w.agent_id}-${w.id}` : w.id);
