// Sign in and sign out. The token lives in localStorage so a reload keeps the session; a 401
// from any call (expired token, logout in another tab) brings the sign-in form back.

import { ApiError, describe, post, session } from "./api.js";
import { $, say } from "./dom.js";

/** Wire the sign-in form; `onSignedIn(user)` runs after a successful login. */
export function setupLogin(onSignedIn) {
  const form = $("#login-form");
  const error = $("#login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const username = form.username.value.trim();
    const password = form.password.value;
    say(error, "");
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      const answer = await post("/api/login", { username, password });
      session.token = answer.token;
      form.password.value = "";
      onSignedIn({ username: answer.username, role: answer.role, download: answer.download,
        namespaces: answer.namespaces });
    } catch (err) {
      const text = err instanceof ApiError && err.unauthorized
        ? "Wrong username or password."
        : describe(err, "sign in");
      say(error, text, "error");
      form.password.select();
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
  });
}

/** Show the sign-in form, with an optional reason ("Your session has ended"). */
export function showLogin(reason = "") {
  say($("#login-error"), reason, reason ? "info" : "");
  const form = $("#login-form");
  (form.username.value ? form.password : form.username).focus();
}

/** End the session on the server (best effort) and locally. */
export async function logout() {
  try {
    await post("/api/logout");
  } catch {
    // The token may already be gone on the server; signing out locally is what matters.
  }
  session.token = null;
}
