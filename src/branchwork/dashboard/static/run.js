// The run page: header (parameters, status, duration, counts), the failed step runs first
// when the run failed, the grouped graph, the timeline. While the run is going it follows the
// run's event stream and updates in place; resume and stop are POSTs.

import { getJSON, path, postAction, PAGE_SIZE } from "./api.js";
import { fields, h, link, replace, route } from "./dom.js";
import { countsBar, countsText, duration, FINISHED, localTime, number, runSeconds, statusBadge } from "./format.js";
import { RunGraph } from "./graph.js";
import { follow } from "./live.js";
import { Timeline } from "./timeline.js";
import { errorBox, loading, pager, section } from "./widgets.js";

const RESUMABLE = new Set(["failed", "stopped", "paused"]); // paused: once answered or timed out
const STOPPABLE = new Set(["initializing", "running"]);
const RESUME_GRACE_MS = 30000; // how long a resumed run may still read as failed/stopped
// What a progress event says about the run itself (the rest is counts).
const LIVE_FIELDS = ["status", "start_time", "end_time", "duration_s", "earlier_sessions_s", "failed_step", "exception_type", "exception_message"];

export function renderRun(root, { run }) {
  const page = new RunPage(root, run);
  page.start();
  return () => page.close();
}

class RunPage {
  constructor(root, run) {
    this.root = root;
    this.run = run;
    this.header = h("div", { class: "run-header" }, loading("the run"));
    this.message = h("div", { class: "action-message", role: "status" });
    this.failed = h("div", { class: "failed-items" });
    this.failedPage = 1;
    this.stopLive = null;
    this.closed = false;
    replace(root, this.header);
  }

  async start() {
    try {
      this.detail = await getJSON(path("runs", this.run));
    } catch (error) {
      replace(this.root, h("h1", {}, this.run), errorBox(error), link(["runs"], "All runs"));
      return;
    }
    // "latest" or an id prefix may name another run tomorrow: from here on, use its name.
    this.run = this.detail.run.name;
    history.replaceState(null, "", route(["runs", this.run]));
    this.graph = new RunGraph(this.run);
    this.timeline = new Timeline(this.run);
    this.layout();
    await Promise.all([this.loadFailed(), this.loadPart(this.graph), this.loadPart(this.timeline)]);
    if (!FINISHED.has(this.detail.run.status)) this.live();
  }

  layout() {
    const failedFirst = this.detail.run.status === "failed";
    const failed = section("Failed step runs", this.failed);
    failed.id = "failed";
    const graph = section("Graph", h("p", { class: "hint" }, "One box per step; click a box to list its step runs. Dashed edges pass a value."), this.graph.element);
    const timeline = section("Timeline", this.timeline.element);
    this.drawHeader();
    replace(this.root, this.header, this.message, failedFirst ? [failed, graph, timeline] : [graph, timeline, failed]);
  }

  async loadPart(part) {
    try {
      await part.load();
    } catch (error) {
      replace(this.message, errorBox(error));
    }
  }

  async loadFailed() {
    try {
      const answer = await getJSON(`${path("runs", this.run)}/failed`, { page: this.failedPage, page_size: PAGE_SIZE });
      replace(this.failed, failedTable(this.run, answer.items), answer.total > answer.page_size ? pager(answer, (n) => { this.failedPage = n; this.loadFailed(); }) : null);
      this.failed.closest("section").hidden = answer.total === 0;
    } catch (error) {
      replace(this.failed, errorBox(error));
    }
  }

  drawHeader() {
    const { run, counts, steps } = this.detail;
    const seconds = runSeconds(run);
    replace(
      this.header,
      h("div", { class: "title-row" },
        h("h1", {}, run.name, " ", statusBadge(run.status)),
        h("div", { class: "actions" }, this.actionButtons(run.status))),
      fields([
        ["Pipeline", run.pipeline],
        ["Kind", run.kind ?? (run.is_dynamic ? "dynamic" : "static")],
        ["Started", localTime(run.start_time ?? run.created)],
        ["Ended", localTime(run.end_time)],
        ["Duration", duration(seconds)],
        ["Orchestrator", run.orchestrator ?? "-"],
        ["Stack", run.stack ?? undefined],
        ["Child of", run.parent_run_id ? parentLink(run) : undefined],
        ["Steps", h("span", {}, countsBar(counts), " ", countsText(counts))],
      ]),
      run.exception_type || run.exception_message ? errorLine(run) : null,
      parameters(run.parameters),
      stepsTable(steps || []),
    );
  }

  actionButtons(status) {
    const button = (label, action, enabled) =>
      h("button", { type: "button", class: `action ${action}`, disabled: !enabled || this.acting, on: { click: () => this.act(action) } }, label);
    return [button("Resume", "resume", RESUMABLE.has(status)), button("Stop", "stop", STOPPABLE.has(status))];
  }

  async act(action) {
    this.acting = true;
    this.drawHeader();
    replace(this.message, action === "resume" ? "Resuming…" : "Stopping…");
    try {
      await postAction(`${path("runs", this.run)}/${action}`);
      if (action === "resume") this.resumedAt = Date.now();
      replace(this.message, action === "resume" ? "Resume started; following the run." : "Stop requested.");
      this.live();
    } catch (error) {
      replace(this.message, errorBox(error));
    } finally {
      this.acting = false;
      this.drawHeader();
    }
  }

  live() {
    if (this.stopLive || this.closed) return;
    this.stopLive = follow(this.run, {
      progress: (data) => this.progress(data),
      end: (data) => this.ended(data),
    });
  }

  progress(data) {
    const failedBefore = this.detail.counts?.failed || 0;
    if (STOPPABLE.has(data.status)) this.resumedAt = null;
    for (const field of LIVE_FIELDS) if (field in data) this.detail.run[field] = data[field];
    if (data.counts) this.detail.counts = data.counts;
    if (data.steps) {
      this.detail.steps = data.steps;
      this.graph.update(data.steps);
    }
    this.drawHeader();
    if ((data.counts?.failed || 0) !== failedBefore) this.loadFailed();
    this.throttledTimeline();
  }

  throttledTimeline() {
    if (this.timelineTimer) return;
    this.timelineTimer = setTimeout(() => {
      this.timelineTimer = null;
      if (!this.closed) this.loadPart(this.timeline);
    }, 2000);
  }

  async ended(data) {
    this.stopLive = null;
    if (data.deleted) return replace(this.message, errorBox("This run was deleted."));
    // A resume just asked for may not have marked the run running yet: the stream then ends
    // at once on the old status. Listen again until the resumed run shows up.
    if (this.resumedAt && RESUMABLE.has(data.status) && Date.now() - this.resumedAt < RESUME_GRACE_MS) {
      setTimeout(() => this.live(), 500);
      return;
    }
    this.resumedAt = null;
    await this.refresh();
  }

  async refresh() {
    if (this.closed) return;
    try {
      this.detail = await getJSON(path("runs", this.run));
    } catch (error) {
      replace(this.message, errorBox(error));
      return;
    }
    this.drawHeader();
    replace(this.message);
    await Promise.all([this.loadFailed(), this.loadPart(this.graph), this.loadPart(this.timeline)]);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timelineTimer);
    if (this.stopLive) this.stopLive();
  }
}

function errorLine(run) {
  if (run.status === "paused" && run.exception_type === "ChildRunPaused") {
    return h("p", { class: "paused-line" }, `Paused with ${run.failed_step}: ${run.exception_message}`);
  }
  const where = run.failed_step ? `Step ${run.failed_step}: ` : "";
  const what = [run.exception_type, run.exception_message].filter(Boolean).join(": ");
  return h("pre", { class: "error-line" }, where + what);
}

function parameters(values) {
  const entries = Object.entries(values || {});
  if (!entries.length) return null;
  return h("div", { class: "params" }, h("h3", {}, "Parameters"),
    fields(entries.map(([name, value]) => [name, h("span", { class: "mono" }, typeof value === "string" ? value : JSON.stringify(value))])));
}

function stepsTable(steps) {
  if (!steps.length) return null;
  return h("table", { class: "grid compact steps" },
    h("thead", {}, h("tr", {}, ["Step", "Runs", "", "By state"].map((c) => h("th", {}, c)))),
    h("tbody", {}, steps.map((step) => h("tr", { "data-step": step.step_name },
      h("td", {}, step.step_name), h("td", { class: "num" }, number(step.total)),
      h("td", {}, countsBar(step.counts)), h("td", {}, countsText(step.counts))))));
}

function failedTable(run, items) {
  if (!items.length) return h("p", { class: "muted" }, "No failed step runs.");
  return h("table", { class: "grid failed" },
    h("thead", {}, h("tr", {}, ["Invocation", "Step", "Attempt", "Error", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, items.map((item) => h("tr", { "data-invocation": item.invocation },
      h("td", {}, link(["runs", run, "steps", item.invocation], item.invocation)),
      h("td", {}, item.step_name),
      h("td", { class: "num" }, item.attempt ?? "-"),
      h("td", { class: "error-cell" }, [item.exception_type, item.error].filter(Boolean).join(": ")),
      h("td", {}, h("a", { href: route(["runs", run, "steps", item.invocation], { show: "traceback" }), class: "traceback-link" }, "traceback"))))));
}

/** A child run's parent: a link to the parent run, and the invocation that called it. */
function parentLink(run) {
  return h("span", {}, link(["runs", run.parent_run_id], run.parent_run_id, { class: "parent-link" }), ` (${run.parent_invocation_id})`);
}
