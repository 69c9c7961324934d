// The capture form (a modal dialog): duration presets, file ring with its worst-case disk use,
// a BPF filter compiled by the server as you type, snap length and buffer under "Advanced".
// Limits and defaults come from GET /api/limits, so the form never disagrees with the server:
// its `spec_fields` (made from the server's CaptureSpec) say which settings exist, their
// ranges and defaults; each number with an input of its name gets them, and the start body is
// built from the same list. Duration (presets) and the filter (checked as you type) have
// their own controls.

import { describe, get, post } from "./api.js";
import { $, say } from "./dom.js";
import { bytes, duration as human } from "./format.js";
import { rowKey } from "./workloads.js";

const CHECK_DELAY_MS = 250;
const BYTES_PER_MB = 1_000_000; // tcpdump -C unit

export class CaptureForm {
  /** `onStarted(capture)` runs after the server accepted a capture; `onError(text)` shows a
   *  problem that keeps the form from opening. */
  constructor({ onStarted, onError }) {
    this.onStarted = onStarted;
    this.onError = onError;
    this.dialog = $("#capture-dialog");
    this.form = $("#capture-form");
    this.limits = null;
    this.workload = null;
    this.filterState = { text: null, ok: true, message: "", pending: null };
    this.checkSeq = 0;
    this.checkTimer = null;
    const f = this.form;
    f.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    $("#cf-cancel").addEventListener("click", () => this.dialog.close());
    f.addEventListener("input", (e) => {
      if (e.target === f.filter) this.scheduleCheck();
      this.update();
    });
    // Typing a custom duration selects "Custom" (merely tabbing through the field does not).
    f.custom.addEventListener("input", () => { f.duration.value = "custom"; this.update(); });
    this.dialog.addEventListener("close", () => {
      clearTimeout(this.checkTimer);
      // The containers table may have been redrawn meanwhile: focus the same row's button.
      if (document.activeElement === document.body && this.workload) {
        const key = CSS.escape(`capture-${rowKey(this.workload)}`);
        document.querySelector(`[data-focus-key="${key}"]`)?.focus();
      }
    });
  }

  /** Fetch GET /api/limits and apply it; throws ApiError. */
  async loadLimits() {
    this.setLimits(await get("/api/limits"));
  }

  /** Apply the limits: input ranges and defaults. */
  setLimits(limits) {
    this.limits = limits;
    const f = this.form;
    for (const field of this.numberFields()) {
      setRange(f[field.name], field.min, field.max, field.default);
    }
    setRange(f.custom, 1, limits.duration_max, 10);
    f.filter.maxLength = limits.filter_max_chars;
    const preset = [...f.duration].find((r) => Number(r.value) === limits.duration_default);
    if (preset) preset.checked = true;
    else { f.duration.value = "custom"; f.custom.value = limits.duration_default; }
    $("#cf-duration-max").textContent = human(limits.duration_max);
    this.update();
  }

  async open(workload) {
    if (!this.limits) {
      try {
        await this.loadLimits();
      } catch (err) {
        if (!err.unauthorized) this.onError(describe(err, "open the capture form"));
        return;
      }
    }
    this.workload = workload;
    $("#cf-target").textContent = workload.name;
    const where = [workload.image, workload.pod_name && `pod ${workload.pod_name}`,
      workload.namespace && `namespace ${workload.namespace}`, workload.node && `node ${workload.node}`,
      (workload.ips || []).join(", ")].filter(Boolean).join(" · ");
    $("#cf-target-detail").textContent = where;
    const keep = $("#cf-retention");
    keep.textContent = retentionText(this.limits, workload);
    keep.hidden = !keep.textContent;
    say($("#cf-error"), "");
    this.setBusy(false);
    this.update();
    this.dialog.showModal();
    this.form.filter.focus();
    this.form.filter.select();
    this.checkFilter();
  }

  /** The spec's numbers that have an input of their own (duration has its presets). */
  numberFields() {
    return (this.limits?.spec_fields || []).filter((field) =>
      field.kind === "integer" && field.name !== "duration" && this.form[field.name]);
  }

  /** The duration in seconds (0 = until stopped), or NaN when the custom value is unusable. */
  duration() {
    const f = this.form;
    if (f.duration.value !== "custom") return Number(f.duration.value);
    const v = Number(f.custom.value);
    const max = this.limits?.duration_max ?? 86400;
    return Number.isInteger(v) && v >= 1 && v <= max ? v : NaN;
  }

  /** Live parts of the form: custom duration hint, disk use, field validity. */
  update() {
    const f = this.form;
    const custom = f.duration.value === "custom";
    f.custom.required = custom;
    const d = this.duration();
    $("#cf-custom-hint").textContent = !custom ? "" : Number.isNaN(d)
      ? `Enter whole seconds between 1 and ${f.custom.max}.` : `= ${human(d)}`;
    f.custom.setAttribute("aria-invalid", String(custom && Number.isNaN(d)));
    const size = intIn(f.file_size_mb), number = intIn(f.file_number);
    const disk = $("#cf-disk");
    if (size === null || number === null) {
      disk.textContent = `File size must be ${f.file_size_mb.min}–${f.file_size_mb.max} MB and ` +
        `file count ${f.file_number.min}–${f.file_number.max}.`;
      disk.dataset.kind = "error";
    } else {
      const ring = number > 1 ? "; when all are full the oldest file is overwritten" : "";
      disk.textContent = `Maximum disk use: ${bytes(size * number * BYTES_PER_MB)} ` +
        `(${number} file${number === 1 ? "" : "s"} × ${size} MB${ring}).`;
      disk.dataset.kind = "";
    }
    for (const field of this.numberFields()) {
      f[field.name].setAttribute("aria-invalid", String(intIn(f[field.name]) === null));
    }
  }

  scheduleCheck() {
    clearTimeout(this.checkTimer);
    if (this.form.filter.value.trim() !== this.filterState.text) {
      say($("#cf-filter-status"), "Checking the filter…", "pending");
    }
    this.checkTimer = setTimeout(() => this.checkFilter(), CHECK_DELAY_MS);
  }

  /** Ask the server to compile the filter; only the newest answer is shown. Resolves to false
   *  when tcpdump rejects it (true when it compiles or could not be checked). */
  checkFilter() {
    clearTimeout(this.checkTimer);
    const text = this.form.filter.value.trim();
    if (this.filterState.text === text) {
      this.showFilterState();
      return this.filterState.pending ?? Promise.resolve(this.filterState.ok !== false);
    }
    if (!text) {
      this.filterState = { text, ok: true, message: "", pending: null };
      this.showFilterState();
      return Promise.resolve(true);
    }
    const seq = ++this.checkSeq;
    const pending = post("/api/filter/check", { filter: text }, { timeout: 10000 }).then(
      (answer) => ({ ok: Boolean(answer.ok), message: answer.message || "" }),
      (err) => ({ ok: null, message: describe(err, "check the filter") }),
    ).then((result) => {
      if (seq === this.checkSeq) {
        // A check that failed to run (ok: null) is not remembered, so the next one retries.
        this.filterState = { text: result.ok === null ? null : text, ...result, pending: null };
        this.showFilterState();
      }
      return result.ok !== false;
    });
    this.filterState = { text, ok: true, message: "", pending };
    this.showFilterState();
    return pending;
  }

  showFilterState() {
    const { text, ok, message, pending } = this.filterState;
    const status = $("#cf-filter-status");
    this.form.filter.setAttribute("aria-invalid", String(!pending && ok === false));
    if (pending) say(status, "Checking the filter…", "pending");
    else if (ok === false) say(status, message || "tcpdump rejects this filter.", "error");
    else if (ok === null) say(status, `${message} The server checks it again on start.`, "warn");
    else if (!text) say(status, "No filter: every packet is captured.", "");
    else say(status, "✓ The filter compiles.", "ok");
  }

  setBusy(busy) {
    const start = $("#cf-start");
    start.disabled = busy;
    start.textContent = busy ? "Starting…" : "Start capture";
    this.form.setAttribute("aria-busy", String(busy));
  }

  async submit() {
    const f = this.form;
    const error = $("#cf-error");
    say(error, "");
    this.update();
    const d = this.duration();
    if (Number.isNaN(d)) {
      say(error, "Choose a duration: the custom value is not usable.", "error");
      f.custom.focus();
      return;
    }
    const numbers = this.numberFields().map((field) => f[field.name]);
    const bad = numbers.find((input) => intIn(input) === null);
    if (bad) {
      const label = this.form.querySelector(`label[for="${bad.id}"]`)?.textContent || bad.name;
      say(error, `${label}: enter a whole number between ${bad.min} and ${bad.max}.`, "error");
      bad.closest("details")?.setAttribute("open", "");
      bad.focus();
      return;
    }
    this.setBusy(true);
    const filterOk = await this.checkFilter();
    if (!filterOk) {
      this.setBusy(false);
      say(error, "Fix the filter first: tcpdump cannot compile it (see the message under it).",
        "error");
      f.filter.focus();
      return;
    }
    const body = {
      // The node too: the server then starts it there, even if another node has that id.
      workload_id: this.workload.id, agent_id: this.workload.agent_id || undefined,
      duration: d, filter: f.filter.value.trim(),
    };
    for (const input of numbers) body[input.name] = intIn(input);
    try {
      const { capture } = await post("/api/captures", body, { timeout: 30000 });
      this.dialog.close();
      this.onStarted(capture);
    } catch (err) {
      if (err.unauthorized) { this.dialog.close(); return; }
      say(error, describe(err, `start a capture of ${this.workload.name}`), "error");
    } finally {
      this.setBusy(false);
    }
  }
}

/** What the server does with old captures (--retention-days, --reclaim), or "" for nothing.
 * A controller has no reclaim policy of its own: the workload's node (its agent) has one. */
export function retentionText({ retention_days: days, reclaim, nodes = [] }, workload = {}) {
  reclaim ??= nodes.find((n) => n.agent_id === workload.agent_id)?.reclaim;
  const parts = [];
  if (days > 0) {
    parts.push(`Stopped captures are deleted ${days === 1 ? "1 day" : `${days} days`} after ` +
      "they stop.");
  }
  if (reclaim === "oldest") {
    parts.push("When the node's disk budget is full, a start deletes its oldest stopped " +
      "captures first (never a running one).");
  }
  return parts.join(" ");
}

function setRange(input, min, max, value) {
  input.min = min;
  input.max = max;
  input.value = value;
}

/** The input's value as an integer inside its min/max, or null. */
function intIn(input) {
  const v = Number(input.value);
  if (input.value.trim() === "" || !Number.isInteger(v)) return null;
  return v >= Number(input.min) && v <= Number(input.max) ? v : null;
}
