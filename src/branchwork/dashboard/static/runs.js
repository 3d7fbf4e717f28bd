// The runs list: filters (pipeline, status, time, search) kept in the URL, one page of runs
// from the server, refreshed every few seconds on the first page (new runs appear there) and
// while a run on the page is still going; redrawn only when something changed.

import { getJSON, PAGE_SIZE } from "./api.js";
import { h, link, replace, route } from "./dom.js";
import { countsBar, countsText, duration, FINISHED, localTime, number, statusBadge } from "./format.js";
import { errorBox, loading, pager } from "./widgets.js";

const RUN_STATUSES = ["initializing", "running", "completed", "failed", "stopped", "paused"];
const TIME_WINDOWS = { "": "any time", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days" };
const WINDOW_SECONDS = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
const REFRESH_MS = 3000;
const MAX_PAGE = 1000000000; // the server's bound
const SEARCH_LIMIT = 255; // characters the server searches for: the longest run name

export function renderRuns(root, { query }) {
  const filters = {
    pipeline: query.get("pipeline") || "",
    status: query.get("status") || "",
    time: query.get("time") || "",
    q: query.get("q") || "",
  };
  const page = pageNumber(query.get("page"));
  const results = h("div", { class: "results" }, loading("runs"));
  replace(root, h("h1", {}, "Runs"), filterForm(filters), results);
  if (page === null) {
    replace(results, h("p", { class: "empty" }, `“${query.get("page")}” is not a page number: pages are numbered 1, 2, 3… `, h("a", { href: route(["runs"], filters) }, "First page")));
    return null;
  }

  let timer = null;
  let stopped = false;
  let shown = null;
  const load = async () => {
    try {
      const answer = await getJSON("runs", apiQuery(filters, page));
      if (stopped) return;
      const drawn = JSON.stringify(answer);
      if (drawn !== shown) {
        replace(results, runsTable(answer, filters), pager(answer, (n) => go(filters, n)));
        shown = drawn;
      }
      if (page === 1 || answer.items.some(isGoing)) timer = setTimeout(load, REFRESH_MS);
    } catch (error) {
      if (!stopped) replace(results, errorBox(error));
    }
  };
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** The page asked for in the address (1 when none), or null when it is no page number. */
function pageNumber(text) {
  if (text === null || text === "") return 1;
  const page = /^\d+$/.test(text) ? Number(text) : 0;
  return page >= 1 && page <= MAX_PAGE ? page : null;
}

function isGoing(run) {
  return !FINISHED.has(run.status);
}

function apiQuery(filters, page) {
  const seconds = WINDOW_SECONDS[filters.time];
  const since = seconds ? new Date(Date.now() - seconds * 1000).toISOString() : "";
  return { pipeline: filters.pipeline, status: filters.status, q: filters.q, since, page, page_size: PAGE_SIZE };
}

function go(filters, page) {
  location.hash = route(["runs"], { ...filters, page: page > 1 ? page : "" });
}

function filterForm(filters) {
  const pipeline = h("input", { name: "pipeline", placeholder: "pipeline", value: filters.pipeline, "aria-label": "Pipeline" });
  const search = h("input", { name: "q", type: "search", placeholder: "search runs", value: filters.q, maxlength: SEARCH_LIMIT, "aria-label": "Search" });
  const status = select("status", { "": "any status", ...Object.fromEntries(RUN_STATUSES.map((s) => [s, s])) }, filters.status);
  const time = select("time", TIME_WINDOWS, filters.time);
  const read = () => ({ pipeline: pipeline.value.trim(), status: status.value, time: time.value, q: search.value.trim() });
  const form = h(
    "form",
    { class: "filters", on: { submit: (event) => { event.preventDefault(); go(read(), 1); } } },
    pipeline, status, time, search,
    h("button", { type: "submit" }, "Filter"),
  );
  for (const control of [status, time]) control.addEventListener("change", () => go(read(), 1));
  return form;
}

function select(name, options, current) {
  return h(
    "select",
    { name, "aria-label": name },
    Object.entries(options).map(([value, label]) => h("option", { value, selected: value === current }, label)),
  );
}

function runsTable(answer, filters) {
  const runs = answer.items;
  if (!runs.length && answer.total) return pastTheEnd(answer, filters);
  if (!runs.length) {
    const filtered = Object.values(filters).some(Boolean);
    return h("p", { class: "muted empty" }, filtered ? "No runs match these filters." : "No runs yet.");
  }
  return h(
    "table",
    { class: "grid runs" },
    h("thead", {}, h("tr", {}, ["Run", "Pipeline", "Status", "Kind", "Steps", "Duration", "Started", "Ran on"].map((c) => h("th", {}, c)))),
    h("tbody", {}, runs.map(runRow)),
  );
}

/** A page after the last one (runs were deleted, or the address was typed): say so, and link
 * to the last page. */
function pastTheEnd({ page, page_size: size, total }, filters) {
  const last = Math.ceil(total / size);
  const runs = `${number(total)} run${total === 1 ? "" : "s"}`;
  return h("p", { class: "empty" }, `Page ${number(page)} is empty: there ${total === 1 ? "is" : "are"} ${runs}, on ${last === 1 ? "one page" : `${number(last)} pages`}. `,
    h("a", { href: route(["runs"], { ...filters, page: last > 1 ? last : "" }), class: "last-page" }, "Last page"));
}

function runRow(run) {
  return h(
    "tr",
    { "data-run": run.name },
    h("td", {}, link(["runs", run.name], run.name, { class: "run-link" })),
    h("td", {}, run.pipeline),
    h("td", {}, statusBadge(run.status)),
    h("td", {}, run.kind ?? (run.is_dynamic ? "dynamic" : "static")),
    h("td", { class: "steps-cell" }, countsBar(run.counts), countsText(run.counts)),
    h("td", { class: "num" }, duration(run.duration_s)),
    h("td", {}, localTime(run.start_time ?? run.created)),
    ranOn(run),
  );
}

// The stack that started the run, with its orchestrator's flavor in small print; a run
// recorded before stacks were shows the flavor alone.
function ranOn(run) {
  if (!run.stack) return h("td", { class: "ran-on" }, run.orchestrator ?? "-");
  return h(
    "td",
    { class: "ran-on", title: `stack ${run.stack}, orchestrator ${run.orchestrator}` },
    h("span", { class: "stack-name" }, run.stack),
    " ",
    h("small", { class: "muted" }, run.orchestrator),
  );
}
