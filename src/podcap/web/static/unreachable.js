// The banner over the containers and captures lists while some nodes' agents do not answer
// (the `unreachable` part of GET /api/workloads and /api/captures). One line per node, kept by
// agent id and updated in place, so a screen reader hears a node once, not at every refresh.

import { h } from "./dom.js";

/** Show `nodes` ([{agent_id, node, reason}]) in `el`; an empty list hides the banner. */
export function showUnreachable(el, nodes) {
  const wanted = new Map((nodes || []).map((u) => [u.agent_id, u]));
  for (const line of [...el.children]) {
    if (!wanted.has(line.dataset.agentId)) line.remove();
  }
  for (const u of wanted.values()) {
    let line = [...el.children].find((p) => p.dataset.agentId === u.agent_id);
    if (!line) {
      line = h("p", { dataset: { agentId: u.agent_id } },
        h("strong", { dataset: { part: "node" } }), " is not answering (",
        // The reason counts seconds ("last seen 3 s ago"): not re-announced at every refresh.
        h("span", { dataset: { part: "reason" }, "aria-live": "off" }),
        ") — its containers and captures show their last known state. ",
        h("a", { href: "#nodes-title" }, "See Nodes"));
      el.append(line);
    }
    line.querySelector("[data-part=node]").textContent = `Node ${u.node || u.agent_id}`;
    line.querySelector("[data-part=reason]").textContent = u.reason || "no answer";
  }
  el.hidden = wanted.size === 0;
}
