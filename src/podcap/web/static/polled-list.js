// A list the signed-in view keeps fresh (capture groups, recorders): who is signed in (what
// they may do), a refresh every few seconds while the view shows, errors said in the list's
// own place, and a redraw only when something shown changed. A list says where it reads
// (`path`, and the answer's `key`), what it lists (`what`, for errors), and how it draws
// (`rows(item)`, and `shown()` for what shows around the rows).

import { describe, get } from "./api.js";
import { $, keepingFocus, repeat, replaceChildren, say } from "./dom.js";

const REFRESH_MS = 3000;

export class PolledList {
  constructor({ body, error, path, key, what }) {
    this.items = [];
    this.open = new Set(); // ids of the rows shown expanded
    this.halt = null; // ends the refresh loop (dom.js repeat)
    this.active = false; // false once stopped, even while start() awaits
    this.me = null;
    this.lastKey = "";
    this.body = $(body);
    this.error = $(error);
    Object.assign(this, { path, key, what });
  }

  canWrite() { return this.me !== null && this.me.role !== "reader"; }
  canDownload() { return this.me !== null && Boolean(this.me.download); }

  /** Called once the user is known: show what they may do. */
  ready() {}

  /** Called before the rows are drawn: what shows around them. */
  shown() {}

  async start() {
    this.stop();
    this.active = true;
    try {
      this.me = await get("/api/whoami");
    } catch (err) {
      if (!err.unauthorized) say(this.error, describe(err, "read your account"), "error");
      return;
    }
    this.ready();
    if (this.active) this.halt = repeat(REFRESH_MS, () => this.refresh());
  }

  stop() {
    this.active = false;
    this.halt?.();
    this.halt = null;
  }

  async refresh() {
    try {
      this.items = (await get(this.path))[this.key] || [];
      say(this.error, "");
      this.render();
    } catch (err) {
      if (!err.unauthorized) say(this.error, describe(err, `list the ${this.what}`), "error");
    }
  }

  render(force = false) {
    const key = JSON.stringify([this.items, [...this.open]]);
    if (!force && key === this.lastKey) return;
    this.lastKey = key;
    this.shown();
    keepingFocus(() => replaceChildren(this.body, this.items.map((item) => this.rows(item))));
  }

  /** Run exactly while someone is signed in: app.js shows #app-view after a sign-in and hides
   * it after a sign-out. */
  followSignIn() {
    const view = $("#app-view");
    const follow = () => (view.hidden ? this.stop() : this.start());
    new MutationObserver(follow).observe(view, { attributes: true, attributeFilter: ["hidden"] });
    if (!view.hidden) follow();
  }
}

export function notify(text, kind = "ok") {
  say($("#notice"), text, kind);
}
