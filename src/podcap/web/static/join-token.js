// The "Join token" dialog (admins): how long the token is valid and how many nodes may join
// with it; POST /api/agent-tokens; the token is shown once, read-only and copyable, next to the
// `podcap agent` command line that uses it. Closing the dialog forgets it.

import { describe, post } from "./api.js";
import { $, copyField, say } from "./dom.js";
import { when } from "./format.js";

const AGENT_PORT = 10444; // the controller's default agent port (podcap.limits)

/** `podcap agent --controller HOST:10444 --join-token TOKEN`, HOST as this page reached it. */
export function agentCommand(token, host = location.hostname) {
  const address = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `podcap agent --controller ${address}:${AGENT_PORT} --join-token ${token}`;
}

export class JoinTokenDialog {
  constructor({ notify }) {
    this.notify = notify;
    this.dialog = $("#join-dialog");
    this.form = $("#join-form");
    this.error = $("#join-error");
    this.result = $("#join-result");
    this.opener = $("#join-open");
    this.create = $("#join-create");
    this.opener.addEventListener("click", () => this.open());
    $("#join-close").addEventListener("click", () => this.dialog.close());
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    this.form.addEventListener("click", (e) => {
      const target = e.target.closest("[data-copy]");
      if (target) copyField($(`#${target.dataset.copy}`), $("#join-copied"));
    });
    this.dialog.addEventListener("close", () => {
      this.forget();
      if (document.activeElement === document.body) this.opener.focus();
    });
  }

  open() {
    this.forget();
    say(this.error, "");
    this.dialog.showModal();
    this.form.ttl.focus();
    this.form.ttl.select();
  }

  /** The token is shown once: nothing of it stays in the page once the dialog is closed. */
  forget() {
    $("#join-token").value = "";
    $("#join-command").value = "";
    $("#join-expiry").textContent = "";
    $("#join-copied").textContent = "";
    this.result.hidden = true;
    this.create.textContent = "Create token";
  }

  async submit() {
    const minutes = whole(this.form.ttl);
    const uses = whole(this.form.uses);
    if (minutes === null || uses === null) {
      say(this.error, "Enter whole numbers: minutes the token is valid, and how many nodes " +
        "may join with it.", "error");
      (minutes === null ? this.form.ttl : this.form.uses).focus();
      return;
    }
    say(this.error, "");
    this.create.disabled = true;
    this.create.textContent = "Creating…";
    try {
      const issued = await post("/api/agent-tokens", { ttl_s: minutes * 60, uses });
      this.show(issued);
      this.notify("Join token created. It is shown once: copy it now.");
    } catch (err) {
      if (err.unauthorized) { this.dialog.close(); return; }
      this.forget();
      say(this.error, describe(err, "create a join token"), "error");
    } finally {
      this.create.disabled = false;
      if (this.create.textContent === "Creating…") this.create.textContent = "Create token";
    }
  }

  show({ token, expires, uses }) {
    const field = $("#join-token");
    field.value = token;
    $("#join-command").value = agentCommand(token);
    $("#join-expiry").textContent = `Valid until ${when(expires)} for ${uses} ` +
      `join${uses === 1 ? "" : "s"}. Run the command on the new node (use your controller's ` +
      `address and agent port if they differ). Closing this dialog hides the token for good.`;
    $("#join-copied").textContent = "";
    this.result.hidden = false;
    this.create.textContent = "Create another";
    field.focus();
    field.select();
  }
}

/** The input's value as a positive whole number, or null (the server checks the ranges). */
function whole(input) {
  const v = Number(input.value);
  return input.value.trim() !== "" && Number.isInteger(v) && v > 0 ? v : null;
}
