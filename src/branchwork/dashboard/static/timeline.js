// The timeline (Gantt) of a run. One row per step name, folded, with its duration spread
// (p50 / p95 / max) and its stragglers; a row opens onto its step runs. The list is
// virtualized: only the rows in view exist in the page, and step runs are fetched a page at a
// time as they scroll into view, so a group of 10 000 costs what its visible rows cost.

import { getJSON, path } from "./api.js";
import { h, link, replace } from "./dom.js";
import { cssToken, duration, number } from "./format.js";

const ROW = 24; // px, every row the same height so a row's position is index * ROW
const OVERSCAN = 10;
const VIEW_ROWS = 18;
const ITEMS_PAGE = 200;
const KEEP_PAGES = 20; // item pages kept per group; older ones are dropped and fetched again

export class Timeline {
  constructor(run) {
    this.run = run;
    this.groups = [];
    this.open = new Map(); // step_name -> {total, pages: Map(page -> items), pending: Set}
    this.viewport = h("div", { class: "tl-viewport", on: { scroll: () => this.schedule() } });
    this.spacer = h("div", { class: "tl-spacer" });
    this.rows = h("div", { class: "tl-rows" });
    this.viewport.append(this.spacer, this.rows);
    this.axis = h("div", { class: "tl-axis" });
    this.element = h("div", { class: "timeline" }, this.axis, this.viewport);
  }

  async load() {
    const answer = await getJSON(`${path("runs", this.run)}/timeline`, { page: 1, page_size: 1 });
    this.groups = answer.groups || [];
    for (const entry of this.open.values()) entry.pages.clear();
    this.span = timeSpan(answer, this.groups);
    this.draw();
  }

  toggle(name) {
    if (this.open.has(name)) this.open.delete(name);
    else this.open.set(name, { total: this.groups.find((g) => g.step_name === name)?.total ?? null, pages: new Map(), pending: new Set() });
    this.draw();
  }

  /** Row i -> a group row or one step run of an open group. */
  rowAt(index) {
    let at = 0;
    for (const group of this.groups) {
      if (index === at) return { group };
      at += 1;
      const entry = this.open.get(group.step_name);
      const size = entry ? rowsOf(entry) : 0;
      if (index < at + size) return { group, entry, item: index - at };
      at += size;
    }
    return null;
  }

  rowCount() {
    return this.groups.reduce((sum, group) => {
      const entry = this.open.get(group.step_name);
      return sum + 1 + (entry ? rowsOf(entry) : 0);
    }, 0);
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.draw();
    });
  }

  draw() {
    const count = this.rowCount();
    this.spacer.style.height = `${count * ROW}px`;
    this.viewport.style.height = `${Math.min(count, VIEW_ROWS) * ROW + 2}px`;
    replace(this.axis, axisTicks(this.span));
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(count, first + VIEW_ROWS + 2 * OVERSCAN);
    const visible = [];
    for (let index = first; index < last; index++) visible.push(this.row(index));
    replace(this.rows, visible);
  }

  row(index) {
    const { group, entry, item } = this.rowAt(index);
    const element = entry ? this.itemRow(group, entry, item) : this.groupRow(group);
    element.style.top = `${index * ROW}px`;
    return element;
  }

  groupRow(group) {
    const isOpen = this.open.has(group.step_name);
    const stragglers = (group.stragglers || []).map(stragglerName);
    const toggle = h("button", { type: "button", class: "tl-toggle", "aria-expanded": String(isOpen), on: { click: () => this.toggle(group.step_name) } },
      `${isOpen ? "▾" : "▸"} ${group.step_name}`);
    return h("div", { class: "tl-row tl-group", "data-step": group.step_name },
      h("div", { class: "tl-label" }, toggle, h("span", { class: "muted" }, ` ×${number(group.total)}`)),
      h("div", { class: "tl-track" }, bar(this.span, group.start, group.end, "tl-bar group")),
      h("div", { class: "tl-stats" },
        group.p50 != null ? `p50 ${duration(group.p50)} · p95 ${duration(group.p95)} · max ${duration(group.max)}` : "",
        stragglers.length ? h("span", { class: "straggler-note", title: stragglers.join(", ") }, ` · ${stragglers.length} straggler${stragglers.length === 1 ? "" : "s"}`) : null),
    );
  }

  itemRow(group, entry, index) {
    const page = Math.floor(index / ITEMS_PAGE) + 1;
    const items = entry.pages.get(page);
    if (!items) {
      this.fetchPage(group.step_name, entry, page);
      return h("div", { class: "tl-row tl-item muted" }, h("div", { class: "tl-label" }, "…"));
    }
    const item = items[index % ITEMS_PAGE];
    if (!item) return h("div", { class: "tl-row tl-item" });
    const slow = isStraggler(group, item);
    return h("div", { class: `tl-row tl-item${slow ? " straggler" : ""}`, "data-invocation": item.invocation },
      h("div", { class: "tl-label" }, link(["runs", this.run, "steps", item.invocation], item.invocation)),
      h("div", { class: "tl-track" }, bar(this.span, item.start, item.end, `tl-bar st-${cssToken(item.status)}`)),
      h("div", { class: "tl-stats" }, `${item.status} · ${duration(item.duration_s)}${slow ? " · straggler" : ""}`),
    );
  }

  async fetchPage(name, entry, page) {
    if (entry.pending.has(page)) return;
    entry.pending.add(page);
    try {
      const answer = await getJSON(`${path("runs", this.run, "groups", name)}/items`, { page, page_size: ITEMS_PAGE });
      entry.total = answer.total;
      entry.pages.set(page, answer.items);
      while (entry.pages.size > KEEP_PAGES) entry.pages.delete(entry.pages.keys().next().value);
    } finally {
      entry.pending.delete(page);
    }
    if (this.open.get(name) === entry) this.schedule();
  }
}

function rowsOf(entry) {
  return entry.total ?? 1;
}

function stragglerName(straggler) {
  return typeof straggler === "string" ? straggler : straggler.invocation;
}

function isStraggler(group, item) {
  if ((group.stragglers || []).some((s) => stragglerName(s) === item.invocation)) return true;
  return group.p95 != null && item.duration_s != null && item.duration_s > group.p95 * 1.5 && group.p95 > 0;
}

/** The run's span (until now while it goes), stretched over any step outside it. */
function timeSpan(run, groups) {
  const starts = [run.start, ...groups.map((g) => g.start)].filter(Boolean).map(Date.parse);
  const ends = [run.end, ...groups.map((g) => g.end)].filter(Boolean).map(Date.parse);
  if (!starts.length) return null;
  const start = Math.min(...starts);
  return { start, end: Math.max(start + 1, run.end ? -Infinity : Date.now(), ...ends) };
}

function bar(span, start, end, className) {
  if (!span || !start) return null;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : Date.now();
  const width = span.end - span.start;
  const left = ((from - span.start) / width) * 100;
  const size = Math.max(((to - from) / width) * 100, 0.15);
  return h("div", { class: className, style: { left: `${left}%`, width: `${Math.min(size, 100 - left)}%` }, title: duration((to - from) / 1000) });
}

function axisTicks(span) {
  if (!span) return h("span", { class: "muted" }, "No step has started yet.");
  const seconds = (span.end - span.start) / 1000;
  return h("div", { class: "tl-ticks" }, [0, 0.25, 0.5, 0.75, 1].map((f) =>
    h("span", { class: "tl-tick", style: { left: `${f * 100}%` } }, `+${duration(seconds * f)}`)));
}
