// "Follow live": the exact command that streams one capture into Wireshark as tcpdump writes
// it, to paste into a terminal where `podcap login` was done for this server. The page holds no
// secret for it: the CLI brings its own token (login file or PODCAP_TOKEN).

import { describe, get } from "./api.js";
import { copyField, h, say } from "./dom.js";

/** This page's server as the CLI names it (its folder, so a proxy's path prefix is kept). */
export function serverUrl() {
  return new URL(".", location.href).href.replace(/\/$/, "");
}

/** One shell word: as is when plain, else in single quotes. */
function quote(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** The command: pcap from the capture's start, then new packets until the capture ends. */
export function followCommand(id, server = serverUrl()) {
  return `podcap --server ${quote(server)} capture follow ${quote(id)} | wireshark -k -i -`;
}

let dialog = null;

function build() {
  const command = h("textarea", { id: "follow-command", class: "mono", rows: 3,
    readonly: true, spellcheck: "false", "aria-describedby": "follow-text" });
  const copied = h("p", { class: "small", role: "status", "aria-live": "polite" });
  const text = h("p", { id: "follow-text" });
  const error = h("p", { class: "message", role: "alert", hidden: true });
  const close = h("button", { type: "button", onclick: () => dialog.el.close() }, "Close");
  const copy = h("button", { type: "button", "aria-label": "Copy the command",
    onclick: () => copyField(command, copied) }, "Copy");
  const el = h("dialog", { id: "follow-dialog", "aria-labelledby": "follow-title" },
    h("h2", { id: "follow-title" }),
    text,
    h("label", { for: "follow-command" }, "Run in a terminal"),
    h("div", { class: "copy-row" }, command, copy),
    copied,
    h("p", { class: "muted small" }, "Needs ", h("code", {}, "podcap login"),
      " to this server once (or PODCAP_TOKEN). For a terminal view, replace the part after ",
      h("code", {}, "|"), " with ", h("code", {}, "tshark -r -"), "."),
    error,
    h("div", { class: "dialog-actions" }, close));
  document.body.append(el);
  return { el, command, copied, text, error, title: el.querySelector("h2") };
}

/** Open the dialog for capture `id`; `label` names its container. */
export async function openFollow(id, label) {
  dialog ??= build();
  const d = dialog;
  d.title.textContent = `Follow the capture of ${label} live`;
  d.command.value = followCommand(id);
  d.copied.textContent = "";
  d.text.textContent = "";
  say(d.error, "");
  d.el.showModal();
  d.command.focus();
  d.command.select();
  try {
    const { capture } = await get(`/api/captures/${encodeURIComponent(id)}`);
    d.text.textContent = capture.status === "running"
      ? "Wireshark shows the packets captured so far, then each new one as it arrives, " +
        "until the capture stops."
      : "This capture has ended: Wireshark shows what it recorded.";
  } catch (err) {
    if (!err.unauthorized) say(d.error, describe(err, "read the capture"), "warn");
  }
}

/** The row's button. */
export function followButton(id, label) {
  return h("button", { type: "button", dataset: { action: "follow" },
    "aria-label": `Follow capture of ${label} live`, onclick: () => openFollow(id, label) },
  "Live…");
}
