// Shared formatting: durations and times the way the CLI prints them, status badges and the
// small bar of counts by state.

import { h } from "./dom.js";

// Drawing order of states in bars and count lists: done first, trouble last.
const STATES = [
  "completed", "cached", "running", "initializing", "not_started", "retried", "paused", "stopped",
  "failed",
];
export const FINISHED = new Set(["completed", "cached", "failed", "stopped", "paused"]);

export function number(n) {
  return Number(n ?? 0).toLocaleString("en-US");
}

/** At most `length` characters, an ellipsis saying some were cut. */
export function clip(text, length) {
  const value = String(text ?? "");
  return value.length > length ? value.slice(0, length - 1) + "…" : value;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 0.0005) return "<1ms";
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 10) return `${seconds.toFixed(2)}s`;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const minutes = Math.floor(seconds / 60);
  const secs = String(Math.floor(seconds % 60)).padStart(2, "0");
  if (minutes < 60) return `${minutes}m ${secs}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
}

/** Seconds between two ISO times, or from `start` until now while it is still going. */
export function elapsed(start, end) {
  if (!start) return null;
  return ((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000;
}

export function localTime(iso) {
  if (!iso) return "-";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())} ` +
    `${pad(moment.getHours())}:${pad(moment.getMinutes())}:${pad(moment.getSeconds())}`
  );
}

/** "not_started" -> "not started". */
export function stateLabel(state) {
  return String(state).replaceAll("_", " ");
}

export function statusBadge(status) {
  const value = String(status ?? "unknown");
  return h("span", { class: `badge st-${cssToken(value)}` }, value);
}

/** A store value made safe for a class name (it is only ever a fixed status word anyway). */
export function cssToken(value) {
  return String(value).toLowerCase().replace(/[^a-z0-9_-]/g, "");
}

export function orderedCounts(counts) {
  const known = STATES.filter((state) => counts?.[state]);
  const other = Object.keys(counts || {}).filter((state) => !STATES.includes(state) && counts[state]);
  return [...known, ...other].map((state) => [state, counts[state]]);
}

export function total(counts) {
  return Object.values(counts || {}).reduce((sum, n) => sum + n, 0);
}

/** "12 completed · 1 failed" as separate spans, coloured by state. */
export function countsText(counts) {
  const parts = orderedCounts(counts);
  if (!parts.length) return h("span", { class: "muted" }, "no steps");
  return h(
    "span",
    { class: "counts" },
    parts.map(([state, n]) => h("span", { class: `count st-${cssToken(state)}` }, `${number(n)} ${stateLabel(state)}`)),
  );
}

/** A thin horizontal bar split by state, widths proportional to the counts. */
export function countsBar(counts) {
  const all = total(counts) || 1;
  return h(
    "span",
    { class: "bar", title: orderedCounts(counts).map(([st, n]) => `${number(n)} ${stateLabel(st)}`).join(", ") },
    orderedCounts(counts).map(([state, n]) =>
      h("span", { class: `seg bg-${cssToken(state)}`, style: { width: `${(100 * n) / all}%` } }),
    ),
  );
}
