// Saving a pcap. The download needs the X-Auth-Token header, so a plain link cannot work: the
// file is fetched with the header, wrapped in a Blob and handed to the browser's save dialog
// through a temporary <a download>. The browser holds the file in memory until it is saved.

import { request } from "./api.js";
import { h } from "./dom.js";
import { stamp } from "./format.js";

const DOWNLOAD_TIMEOUT_MS = 10 * 60 * 1000;

/** Fetch the capture's pcap and save it; resolves to {name, size}. Throws ApiError. */
export async function savePcap(capture) {
  const response = await request("GET", `/api/captures/${encodeURIComponent(capture.id)}/pcap`,
    { raw: true, timeout: DOWNLOAD_TIMEOUT_MS });
  const blob = await response.blob();
  const name = fileName(response.headers.get("Content-Disposition"), capture);
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return { name, size: blob.size };
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
