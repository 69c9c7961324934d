// podcap web UI: wiring only. Each part lives in its own module:
//   api.js (token, requests, plain-word errors), login.js, workloads.js (containers table),
//   capture-form.js (the capture dialog), captures.js (list, counters, stop/download/delete),
//   nodes.js (the cluster's agents), join-token.js (the join token dialog), unreachable.js,
//   admin.js (users and the audit log, for admins).

import { AdminPage } from "./admin.js";
import { describe, get, session } from "./api.js";
import { CaptureForm } from "./capture-form.js";
import { CaptureList } from "./captures.js";
import { $, say } from "./dom.js";
import { JoinTokenDialog } from "./join-token.js";
import { logout, setupLogin, showLogin } from "./login.js";
import { NodeList } from "./nodes.js";
import { WorkloadTable } from "./workloads.js";

let noticeTimer = null;
let user = null;
/** Readers may only look; the server refuses them anything else, the page says so. */
const canWrite = () => user !== null && user.role !== "reader";
const isAdmin = () => user !== null && user.role === "admin";
/** Packet data needs the download right (admins always have it: whoami says so). */
const canDownload = () => user !== null && Boolean(user.download);

/** A short message in the page's live region ("Capture started", "Deleted ..."). */
function notify(text, kind = "ok") {
  const notice = $("#notice");
  say(notice, text, kind);
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => say(notice, ""), 8000);
}

let unreachableKey = "";
const captures = new CaptureList({
  onChange: () => workloads.render(),
  // A node stopped (or resumed) answering: the nodes list shows it now, not in up to 5 s.
  onUnreachable: (nodes) => {
    const key = nodes.map((u) => u.agent_id).sort().join();
    if (key !== unreachableKey) nodeList.refresh();
    unreachableKey = key;
  },
  notify,
  canWrite,
  canDownload,
});
const workloads = new WorkloadTable({
  onCapture: (w) => form.open(w),
  runningCount: (w) => captures.runningCount(w),
  canWrite,
});
const form = new CaptureForm({
  onStarted: (capture) => {
    captures.add(capture);
    notify(`Capture of ${capture.workload_name} started.`);
  },
  onError: (text) => notify(text, "error"),
});
const nodeList = new NodeList({ notify, isAdmin });
new JoinTokenDialog({ notify });
const admin = new AdminPage({ notify, isAdmin, me: () => user?.username });

function showView(signedIn) {
  $("#login-view").hidden = signedIn;
  $("#app-view").hidden = !signedIn;
  $("#session").hidden = !signedIn;
}

async function enter(who) {
  user = who;
  $("#whoami").textContent = `${user.username} (${user.role})`;
  showView(true);
  $("#search").focus();
  try {
    await form.loadLimits();
  } catch (err) {
    if (err.unauthorized) return;
    notify(describe(err, "load the capture limits"), "error"); // the form retries on opening
  }
  captures.start();
  workloads.start();
  nodeList.start();
  admin.start();
}

function leave(reason = "") {
  user = null;
  captures.stop();
  workloads.stop();
  nodeList.stop();
  admin.stop();
  unreachableKey = "";
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  showView(false);
  showLogin(reason);
}

session.onExpired(() => {
  session.token = null;
  const wasIn = !$("#app-view").hidden;
  if (wasIn || $("#login-view").hidden) leave(wasIn ? "Your session has ended. Sign in again." : "");
});

setupLogin(enter);

$("#logout").addEventListener("click", async () => {
  await logout();
  leave("Signed out.");
});

// Signing out (or in) in another tab of the same browser does the same here.
window.addEventListener("storage", (event) => {
  if (event.key !== "podcap.token") return;
  if (!event.newValue) leave("Signed out in another window.");
  else if ($("#app-view").hidden) start();
});

// "/" jumps to the search box, as on many sites.
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest?.("input, textarea, select, dialog");
  if (event.key === "/" && !typing && !$("#app-view").hidden) {
    event.preventDefault();
    $("#search").focus();
  }
});

async function start() {
  if (!session.token) return leave();
  try {
    enter(await get("/api/whoami"));
  } catch (err) {
    if (err.unauthorized) return; // onExpired showed the sign-in form
    leave(describe(err, "resume the session"));
  }
}

start();
