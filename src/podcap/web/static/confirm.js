// A confirmation dialog that is keyboard friendly: Cancel has focus, Escape cancels.

import { $ } from "./dom.js";

/** Resolves true when the user confirms. */
export function confirmDialog({ title, text, confirm = "OK" }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = confirm;
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}
