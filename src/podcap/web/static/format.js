// Number, size and time formatting. Sizes are decimal (1 MB = 1,000,000 bytes) because that is
// what tcpdump's -C counts, so "2 MB per file" in the form means exactly the -C 2 on disk.

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export const count = (n) => integer.format(n ?? 0);

export function bytes(n) {
  n = n ?? 0;
  if (n < 1000) return `${integer.format(n)} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let i = -1;
  do { n /= 1000; i += 1; } while (n >= 1000 && i < units.length - 1);
  return `${decimal.format(n)} ${units[i]}`;
}

/** 75 -> "1:15", 3725 -> "1:02:05". */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const pad = (v) => String(v).padStart(2, "0");
  return hh ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}

/** 30 -> "30 s", 90 -> "1 min 30 s", 7200 -> "2 h". */
export function duration(seconds) {
  const s = Math.round(seconds);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const parts = [];
  if (hh) parts.push(`${hh} h`);
  if (mm) parts.push(`${mm} min`);
  if (ss || !parts.length) parts.push(`${ss} s`);
  return parts.join(" ");
}

/** Unix seconds -> local "14:03:07" (today) or "2026-11-24 14:03". */
export function when(unixSeconds) {
  if (!unixSeconds) return "";
  const d = new Date(unixSeconds * 1000);
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString(undefined, { hour12: false })
    : `${d.toLocaleDateString()} ${d.toLocaleTimeString(undefined, { hour12: false })}`;
}

/** Unix seconds -> "20261125-140307" in UTC, like the server's download names. */
export function stamp(unixSeconds) {
  const iso = new Date((unixSeconds || Date.now() / 1000) * 1000).toISOString();
  return iso.slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
}

/** 12 -> "12 s ago", 300 -> "5 min ago", 7200 -> "2 h ago", 172800 -> "2 d ago". */
export function ago(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
