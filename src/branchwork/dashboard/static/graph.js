// The grouped graph of a run: one box per step name (a fan-out of 10 000 is one box with its
// counts by state and a bar of them), edges through values dashed; the server sends at most
// 300 step names. A box opens lazily onto one page of its step runs, fetched from the groups
// endpoint; at most MAX_OPEN boxes are open at once, so the drawing stays small however many
// step names it has: opening one more closes the oldest open one, and the graph says so.

import { getJSON, path } from "./api.js";
import { h, replace, route, s } from "./dom.js";
import { clip, cssToken, duration, number, orderedCounts, stateLabel, total } from "./format.js";
import { layout } from "./graph_layout.js";

const MAX_OPEN = 5;
const ITEMS_PER_PAGE = 40;
const NODE = { w: 240, h: 78 };
const CHIP = { w: 112, h: 18, gap: 4, columns: 2 };

export class RunGraph {
  constructor(run) {
    this.run = run;
    this.element = h("div", { class: "graph-wrap" });
    this.groups = [];
    this.edges = [];
    this.open = new Map(); // step_name -> {page, answer}, oldest first
    this.notice = null; // what the last click closed to stay within MAX_OPEN
  }

  async load() {
    const answer = await getJSON(`${path("runs", this.run)}/graph`);
    this.groups = answer.groups;
    this.edges = answer.edges;
    this.truncated = answer.truncated ? answer : null;
    await Promise.all([...this.open.keys()].map((name) => this.fetchItems(name, this.open.get(name).page)));
    this.draw();
  }

  /** Counts from a live event: redraw in place, or reload when new step names appeared. */
  update(steps) {
    const known = new Map(this.groups.map((group) => [group.step_name, group]));
    if (steps.some((step) => !known.has(step.step_name))) return this.load();
    for (const step of steps) Object.assign(known.get(step.step_name), { counts: step.counts, total: step.total });
    this.draw();
  }

  async toggle(name) {
    this.notice = null;
    if (this.open.has(name)) {
      this.open.delete(name);
    } else {
      await this.fetchItems(name, 1);
      const closed = this.closeOldest();
      if (closed.length) this.notice = `Closed ${closed.join(", ")}: at most ${MAX_OPEN} boxes are open at once.`;
    }
    this.draw();
  }

  /** Closes the oldest open boxes past MAX_OPEN; their names. */
  closeOldest() {
    const closed = [];
    while (this.open.size > MAX_OPEN) {
      const oldest = this.open.keys().next().value;
      this.open.delete(oldest);
      closed.push(oldest);
    }
    return closed;
  }

  async fetchItems(name, page) {
    const answer = await getJSON(`${path("runs", this.run, "groups", name)}/items`, { page, page_size: ITEMS_PER_PAGE });
    this.open.set(name, { page, answer });
  }

  async turnPage(name, page) {
    await this.fetchItems(name, page);
    this.draw();
  }

  sizeOf(group) {
    const entry = this.open.get(group.step_name);
    if (!entry) return NODE;
    const rows = Math.ceil(entry.answer.items.length / CHIP.columns);
    return { w: Math.max(NODE.w, CHIP.columns * (CHIP.w + CHIP.gap) + 12), h: NODE.h + 26 + rows * (CHIP.h + CHIP.gap) };
  }

  draw() {
    const byId = new Map(this.groups.map((group) => [group.id, group]));
    const { positions, width, height, back } = layout(this.groups, this.edges, (id) => this.sizeOf(byId.get(id)));
    const svg = s(
      "svg",
      { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Step graph" },
      s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }))),
      this.edges.map((edge, index) => edgePath(edge, positions, back.has(index), height)),
      this.groups.filter((group) => group.feeds_itself).map((group) => selfLoop(group, positions.get(group.id))),
      this.groups.map((group) => this.node(group, positions.get(group.id))),
    );
    replace(this.element, svg, this.truncatedNote(), this.notice ? h("p", { class: "muted graph-notice" }, this.notice) : null);
  }

  truncatedNote() {
    if (!this.truncated) return null;
    const { more, more_invocations: runs } = this.truncated;
    const left = more ? `; ${number(more)} more (${number(runs)} step runs) are not.` : ".";
    return h("p", { class: "muted" }, `Only the first ${number(this.groups.length)} step names are drawn${left}`);
  }

  node(group, at) {
    const entry = this.open.get(group.step_name);
    const state = dominantState(group.counts);
    const stats = group.duration?.p50 != null ? ` · p50 ${duration(group.duration.p50)} · max ${duration(group.duration.max)}` : "";
    const toggle = () => this.toggle(group.step_name);
    return s(
      "g",
      { class: `node st-${cssToken(state)}${entry ? " open" : ""}`, transform: `translate(${at.x},${at.y})`, "data-step": group.step_name },
      s("rect", { class: "node-box", width: at.w, height: at.h, rx: 6 }),
      s("g", { class: "node-head", tabindex: 0, role: "button", "aria-expanded": String(Boolean(entry)), on: { click: toggle, keydown: (e) => e.key === "Enter" && toggle() } },
        s("title", {}, `${group.step_name}: ${entry ? "hide" : "show"} its step runs`),
        s("rect", { class: "node-hit", width: at.w, height: NODE.h }),
        s("text", { x: 10, y: 20, class: "node-name" }, (entry ? "▾ " : "▸ ") + clip(group.step_name, 26)),
        s("text", { x: 10, y: 38, class: "node-sub" }, `${number(group.total)} run${group.total === 1 ? "" : "s"}${stats}`),
        s("text", { x: 10, y: 55, class: "node-counts" }, orderedCounts(group.counts).map(([st, n]) => s("tspan", { class: `st-${cssToken(st)}` }, `${number(n)} ${stateLabel(st)}  `))),
        stateBar(group.counts, 10, 63, at.w - 20),
      ),
      entry ? this.items(group, entry, at) : null,
    );
  }

  items(group, entry, at) {
    const { answer, page } = entry;
    const pages = Math.max(1, Math.ceil(answer.total / answer.page_size));
    const first = (page - 1) * answer.page_size + 1;
    const pageLink = (label, target, x) => target < 1 || target > pages ? null :
      s("text", { x, y: NODE.h + 14, class: "chip-pager", tabindex: 0, role: "button", on: { click: () => this.turnPage(group.step_name, target) } }, label);
    return s(
      "g",
      { class: "items" },
      s("text", { x: 30, y: NODE.h + 14, class: "node-sub" }, `${number(first)}–${number(first + answer.items.length - 1)} of ${number(answer.total)}`),
      pageLink("‹", page - 1, 12),
      pageLink("›", page + 1, at.w - 20),
      answer.items.map((item, i) => chip(this.run, item, 8 + (i % CHIP.columns) * (CHIP.w + CHIP.gap), NODE.h + 24 + Math.floor(i / CHIP.columns) * (CHIP.h + CHIP.gap))),
    );
  }
}

function chip(run, item, x, y) {
  return s(
    "a",
    { href: route(["runs", run, "steps", item.invocation]), class: `chip st-${cssToken(item.status)}` },
    s("title", {}, item.attempt ? `${item.invocation}: ${stateLabel(item.status)}, attempt ${item.attempt}, ${duration(item.duration_s)}` : `${item.invocation}: ${stateLabel(item.status)}`),
    s("rect", { x, y, width: CHIP.w, height: CHIP.h, rx: 3 }),
    s("text", { x: x + 5, y: y + 13 }, clip(item.invocation, 16)),
  );
}

function stateBar(counts, x, y, width) {
  const all = total(counts) || 1;
  let offset = x;
  return s("g", { class: "state-bar" },
    s("rect", { x, y, width, height: 6, class: "bar-bg" }),
    orderedCounts(counts).map(([state, n]) => {
      const w = (width * n) / all;
      const part = s("rect", { x: offset, y, width: w, height: 6, class: `fill-${cssToken(state)}` });
      offset += w;
      return part;
    }));
}

function edgePath(edge, positions, isBack, height) {
  const a = positions.get(edge.from);
  const b = positions.get(edge.to);
  if (!a || !b) return null;
  const kind = edge.kind === "value" ? "value" : "data";
  let d;
  if (isBack) {
    const below = height - 12;
    d = `M${a.x + a.w / 2},${a.y + a.h} C${a.x + a.w / 2},${below} ${b.x + b.w / 2},${below} ${b.x + b.w / 2},${b.y + b.h}`;
  } else {
    const x1 = a.x + a.w, y1 = a.y + Math.min(a.h, NODE.h) / 2, x2 = b.x, y2 = b.y + Math.min(b.h, NODE.h) / 2;
    const bend = Math.max(30, (x2 - x1) / 2);
    d = `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
  }
  return s("path", { d, class: `edge ${kind}`, "marker-end": "url(#arrow)" },
    s("title", {}, `${edge.from} → ${edge.to}${kind === "value" ? " (through a value)" : ""}`));
}

/** A step that takes its own output (x = step(x) in a loop): an arc over its box. */
function selfLoop(group, at) {
  const right = at.x + at.w - 24;
  const d = `M${right},${at.y} C${right},${at.y - 14} ${right - 40},${at.y - 14} ${right - 40},${at.y}`;
  return s("path", { d, class: "edge data", "marker-end": "url(#arrow)" }, s("title", {}, `${group.step_name} → ${group.step_name}`));
}

/** The state that colours a box: trouble first, then activity, then done. */
function dominantState(counts) {
  for (const state of ["failed", "running", "retried", "paused", "stopped", "initializing", "completed", "cached"]) {
    if (counts?.[state]) return state;
  }
  return "empty";
}
