// Saving a pcap. A link cannot send the X-Auth-Token header, so the page first asks for a
// one-use download ticket (60 s, bound to this user and capture) and then follows a plain
// link to it: the browser streams the file straight to disk through its own download manager,
// whatever its size.

import { request } from "./api.js";
import { h } from "./dom.js";
import { stamp } from "./format.js";

/** Save the capture's pcap; resolves to {name, size}. Throws ApiError. */
export async function savePcap(capture) {
  const id = encodeURIComponent(capture.id);
  const ticket = await request("POST", `/api/captures/${id}/ticket`);
  const name = fileName(`filename="${ticket.name}"`, capture);
  // Relative to the page, as every API call, so a path prefix behind a proxy still works.
  const link = h("a", { href: ticket.url.replace(/^\//, ""), download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  return { name, size: capture.size };
}

/** The server's file name (Content-Disposition), else "<container>-<YYYYmmdd-HHMMSS>.pcap". */
export function fileName(disposition, capture) {
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition || "");
  let name = "";
  try {
    name = match ? decodeURIComponent(match[1]) : "";
  } catch {
    name = match[1];
  }
  if (!name) name = `${capture.workload_name || "capture"}-${stamp(capture.start_time)}.pcap`;
  return name.replace(/[\\/:*?"<>|\x00-\x1f]+/g, "_");
}
