// The native API (docs/API.md) from the browser: the session token, one request function and
// errors turned into plain words. Every call sends the token as X-Auth-Token.

const TOKEN_KEY = "podcap.token";
const DEFAULT_TIMEOUT_MS = 15000;

/** An API failure: HTTP status plus the body's {code, error, message}, or a network problem. */
export class ApiError extends Error {
  constructor({ status = 0, code = 0, error = "", message = "", kind = "http" }) {
    super(message || error || `HTTP ${status}`);
    Object.assign(this, { status, code, error, kind });
  }
  get notFound() { return this.status === 404; }
  get unauthorized() { return this.status === 401; }
}

let onUnauthorized = () => {};
let clockOffset = 0; // server time minus browser time, seconds (only when they differ by > 2 s)

export const session = {
  get token() { return localStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
  /** Called once with a function run whenever the server says the token is no longer valid. */
  onExpired(fn) { onUnauthorized = fn; },
};

/** The server's clock now, in Unix seconds: elapsed times agree with the server's start_time. */
export const serverNow = () => Date.now() / 1000 + clockOffset;

function noteServerClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  const offset = (date + 500 - Date.now()) / 1000; // Date has whole seconds: +0.5 s centres it
  clockOffset = Math.abs(offset) > 2 ? offset : 0;
}

/**
 * request("POST", "/api/captures", {body}) -> parsed JSON (or the Response when raw: true).
 * Throws ApiError. A 401 on anything but the login itself ends the session.
 */
export async function request(method, path, { body, raw = false, timeout = DEFAULT_TIMEOUT_MS,
  signal } = {}) {
  const headers = { Accept: "application/json" };
  const token = session.token;
  if (token) headers["X-Auth-Token"] = token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort("timeout"), timeout);
  signal?.addEventListener("abort", () => abort.abort("cancelled"));
  let response;
  try {
    // Relative to the page, so podcap also works behind a proxy under a path prefix.
    response = await fetch(path.replace(/^\//, ""), {
      method, headers, signal: abort.signal, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (exc) {
    const kind = abort.signal.aborted ? String(abort.signal.reason) : "network";
    throw new ApiError({ kind, message: String(exc?.message || exc) });
  } finally {
    clearTimeout(timer);
  }
  noteServerClock(response);
  if (!response.ok) {
    const err = new ApiError({ status: response.status, ...(await errorBody(response)) });
    if (err.unauthorized && path !== "/api/login") onUnauthorized(err);
    throw err;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

async function errorBody(response) {
  const text = await response.text().catch(() => "");
  try {
    const data = JSON.parse(text);
    return { code: data.code ?? 0, error: data.error ?? "", message: data.message ?? data.detail ?? "" };
  } catch {
    return { error: response.statusText, message: text.slice(0, 300) };
  }
}

export const get = (path, opts) => request("GET", path, opts);
export const post = (path, body, opts) => request("POST", path, { ...opts, body });
export const del = (path, opts) => request("DELETE", path, opts);
export const patch = (path, body, opts) => request("PATCH", path, { ...opts, body });

/**
 * Plain words for a failed action: describe(err, "stop the capture").
 * The server's message already says what to change; this adds what failed and, for transport
 * problems, what the user can do about them.
 */
export function describe(err, action) {
  const what = `Could not ${action}`;
  if (!(err instanceof ApiError)) return `${what}: ${err?.message || err}`;
  if (err.kind === "timeout") {
    return `${what}: the server did not answer in time (a slow agent or node?).`;
  }
  if (err.kind === "cancelled") return `${what}: cancelled.`;
  if (err.kind === "network") {
    return `${what}: the podcap server cannot be reached. Check that it is running.`;
  }
  const detail = err.message && err.message !== err.error ? err.message : err.error;
  switch (err.status) {
    case 401: return `${what}: your session has ended. Sign in again.`;
    case 403: return `${what}: you are not allowed to${detail ? ` (${detail})` : ""}.`;
    case 404: return `${what}: it no longer exists${detail ? ` (${detail})` : ""}.`;
    default:
      if (err.status >= 500) return `${what}: the server or agent failed: ${detail || err.status}.`;
      return `${what}: ${detail || `HTTP ${err.status}`}`;
  }
}
