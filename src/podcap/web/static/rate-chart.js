// Charts of a capture (uPlot, vendored in vendor/uplot: no CDN, no build step).
// The live chart turns tcpdump's per-second counters (the agent's "series") into packets/s and
// bytes/s, with kernel drops marked as red points; the timeline chart shows the per-second
// packets computed from the files (the summary's timeline).

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { bytes, count } from "./format.js";

const WIDTH_FALLBACK = 720;

function width(el) {
  return Math.max(320, (el.clientWidth || WIDTH_FALLBACK) - 8);
}

const rateAxis = (fmt) => ({ values: (u, ticks) => ticks.map((v) => fmt(v)) });
// Whole seconds and up on the time axis (uPlot would pick half seconds for a short capture).
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200,
  86400];
const timeAxis = { incrs: TIME_INCRS, space: 60 };
// Rates start at zero: a chart that starts at 45 packets/s would exaggerate every dip.
const fromZero = { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] };

/** Rates from counter points [time, captured, dropped, bytes]: [[x], [pps], [Bps], [drops]]. */
export function rates(points) {
  const xs = [], pps = [], bps = [], drops = [];
  for (let i = 1; i < points.length; i += 1) {
    const [t0, c0, d0, b0] = points[i - 1];
    const [t1, c1, d1, b1] = points[i];
    const dt = t1 - t0;
    if (dt <= 0) continue;
    const p = Math.max(0, c1 - c0) / dt;
    xs.push(t1);
    pps.push(p);
    bps.push(Math.max(0, b1 - b0) / dt);
    drops.push(d1 > d0 ? p : null); // a red point on the packets line where drops happened
  }
  return [xs, pps, bps, drops];
}

export class LiveChart {
  constructor(el) {
    this.el = el;
    this.points = [];
    this.plot = new uPlot({
      width: width(el),
      height: 220,
      scales: { x: { time: true }, pkts: fromZero, bytes: fromZero },
      series: [
        {},
        { label: "packets/s", scale: "pkts", stroke: "#2f6fdf", width: 2,
          value: (u, v) => (v == null ? "—" : `${count(v)}/s`) },
        { label: "bytes/s", scale: "bytes", stroke: "#1f9d55", width: 1.5,
          value: (u, v) => (v == null ? "—" : `${bytes(v)}/s`) },
        { label: "kernel drops", scale: "pkts", stroke: "#d33", fill: "#d33", width: 0,
          paths: () => null, points: { show: true, size: 9, fill: "#d33", stroke: "#d33" },
          value: (u, v) => (v == null ? "none" : "dropped") },
      ],
      axes: [
        timeAxis,
        { scale: "pkts", label: "packets/s", ...rateAxis(count) },
        { scale: "bytes", side: 1, label: "bytes/s", grid: { show: false }, ...rateAxis(bytes) },
      ],
    }, [[], [], [], []], el);
  }

  /** Add counter points (the series document's `points`, oldest first). */
  add(points) {
    const last = this.points.length ? this.points[this.points.length - 1][0] : -Infinity;
    for (const p of points) if (p[0] > last) this.points.push(p);
    const data = rates(this.points);
    this.plot.setData(data);
    this.el.dataset.points = String(data[0].length);
    this.el.dataset.drops = String(data[3].filter((v) => v !== null).length);
  }

  resize() { this.plot.setSize({ width: width(this.el), height: 220 }); }
  destroy() { this.plot.destroy(); }
}

/** Dense per-bucket series from the summary's sparse timeline ({step, points: [[t, p, b]]}). */
export function dense(timeline) {
  const { step, points } = timeline;
  const xs = [], pkts = [], byts = [];
  if (!points.length) return [xs, pkts, byts];
  const byTime = new Map(points.map(([t, p, b]) => [t, [p, b]]));
  for (let t = points[0][0]; t <= points[points.length - 1][0]; t += step) {
    const [p, b] = byTime.get(t) || [0, 0];
    xs.push(t);
    pkts.push(p / step);
    byts.push(b / step);
  }
  return [xs, pkts, byts];
}

export class TimelineChart {
  constructor(el) {
    this.el = el;
    this.plot = new uPlot({
      width: width(el),
      height: 180,
      scales: { x: { time: true }, pkts: fromZero, bytes: fromZero },
      series: [
        {},
        { label: "packets/s (files)", scale: "pkts", stroke: "#2f6fdf", fill: "rgba(47,111,223,.15)",
          width: 1, value: (u, v) => (v == null ? "—" : `${count(v)}/s`) },
        { label: "bytes/s (files)", scale: "bytes", stroke: "#1f9d55", width: 1,
          value: (u, v) => (v == null ? "—" : `${bytes(v)}/s`) },
      ],
      axes: [
        timeAxis,
        { scale: "pkts", label: "packets/s", ...rateAxis(count) },
        { scale: "bytes", side: 1, label: "bytes/s", grid: { show: false }, ...rateAxis(bytes) },
      ],
    }, [[], [], []], el);
  }

  show(timeline) {
    const data = dense(timeline);
    this.plot.setData(data);
    this.el.dataset.points = String(data[0].length);
    this.el.dataset.packets = String(timeline.points.reduce((n, p) => n + p[1], 0));
  }

  resize() { this.plot.setSize({ width: width(this.el), height: 180 }); }
  destroy() { this.plot.destroy(); }
}
