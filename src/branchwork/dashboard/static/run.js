// The run page: header (parameters, status, duration, counts, the question a paused run waits
// on and the questions it asked), the failed step runs first when the run failed, the grouped
// graph, the timeline. While the run can change it follows it (live.js) and updates in place;
// resume and stop are POSTs.

import { getJSON, path, postAction, PAGE_SIZE } from "./api.js";
import { fields, h, link, replace, route } from "./dom.js";
import { countsBar, countsText, duration, localTime, number, statusBadge } from "./format.js";
import { RunGraph } from "./graph.js";
import { follow } from "./live.js";
import { Timeline } from "./timeline.js";
import { errorBox, loading, pager, section } from "./widgets.js";

const RESUMABLE = new Set(["failed", "stopped", "paused"]); // paused: once answered or timed out
const STOPPABLE = new Set(["initializing", "running"]);
const RESUME_GRACE_MS = 30000; // how long a resumed run may still read as failed/stopped
const NEEDS_ANSWER = "Resume is off until the question below is answered.";

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
    await this.loadParts();
    if (this.detail.changes.live) this.live();
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

  loadParts() {
    return Promise.all([this.loadFailed(), this.loadPart(this.graph), this.loadPart(this.timeline)]);
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
    const { run, counts, steps, waiting, waits } = this.detail;
    replace(
      this.header,
      h("div", { class: "title-row" },
        h("h1", {}, run.name, " ", statusBadge(run.status)),
        h("div", { class: "actions" }, this.actionButtons(run.status), waiting ? h("span", { class: "action-reason" }, NEEDS_ANSWER) : null)),
      fields([
        ["Pipeline", run.pipeline],
        ["Kind", run.kind ?? (run.is_dynamic ? "dynamic" : "static")],
        ["Started", localTime(run.start_time ?? run.created)],
        ["Ended", localTime(run.end_time)],
        ["Duration", duration(run.duration_s)], // over its sessions, so far while it runs
        ["Orchestrator", run.orchestrator ?? "-"],
        ["Stack", run.stack ?? undefined],
        ["Child of", run.parent_run_id ? parentLink(run) : undefined],
        ["Steps", h("span", {}, countsBar(counts), " ", countsText(counts))],
      ]),
      run.exception_type || run.exception_message ? errorLine(run) : null,
      waitingBox(run, waiting),
      parameters(run.parameters),
      questionsTable(waits),
      stepsTable(steps || []),
    );
  }

  actionButtons(status) {
    const waiting = Boolean(this.detail.waiting);
    const button = (label, action, enabled, why) =>
      h("button", { type: "button", class: `action ${action}`, disabled: !enabled || this.acting, title: why, on: { click: () => this.act(action) } }, label);
    return [
      button("Resume", "resume", RESUMABLE.has(status) && !waiting, waiting ? NEEDS_ANSWER : null),
      button("Stop", "stop", STOPPABLE.has(status)),
    ];
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
    this.stopLive = follow(this.run, this.detail.changes.token, {
      changed: () => this.changed(),
      ended: (how) => this.ended(how),
    });
  }

  /** The run changed: read it again and update the page in place. */
  async changed() {
    const detail = await getJSON(path("runs", this.run));
    if (this.closed) return;
    const failedBefore = this.detail.counts.failed;
    if (STOPPABLE.has(detail.run.status)) this.resumedAt = null;
    this.detail = detail;
    this.graph.update(detail.steps);
    this.drawHeader();
    if (detail.counts.failed !== failedBefore) this.loadFailed();
    this.throttledTimeline();
  }

  throttledTimeline() {
    if (this.timelineTimer) return;
    this.timelineTimer = setTimeout(() => {
      this.timelineTimer = null;
      if (!this.closed) this.loadPart(this.timeline);
    }, 2000);
  }

  /** The run no longer changes: what the page shows is its last state; draw it in full. */
  async ended({ deleted }) {
    this.stopLive = null;
    if (deleted) return replace(this.message, errorBox("This run was deleted."));
    // A resume just asked for may not have marked the run running yet: following then ends
    // at once on the old status. Follow again until the resumed run shows up.
    if (this.resumedAt && RESUMABLE.has(this.detail.run.status) && Date.now() - this.resumedAt < RESUME_GRACE_MS) {
      setTimeout(() => this.live(), 500);
      return;
    }
    this.resumedAt = null;
    if (this.closed) return;
    replace(this.message);
    await this.loadParts();
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

/** The question a paused run waits on, while it needs an answer, and how to give it: the
 * dashboard does not answer, `branchwork runs answer` does (and resumes the run). */
function waitingBox(run, waiting) {
  if (!waiting) return null;
  const child = waiting.asked_by !== run.name;
  return h("div", { class: "waiting", role: "status" },
    h("h2", {}, "Waiting for an answer", child ? [" (asked by its child run ", link(["runs", waiting.asked_by], waiting.asked_by), ")"] : null),
    h("p", { class: "question" }, waiting.question),
    fields([
      ["Answer schema", waiting.schema ? h("span", { class: "mono" }, JSON.stringify(waiting.schema)) : "any JSON value"],
      ["Asked", localTime(waiting.asked)],
      ["Timeout", timeoutText(waiting)],
    ]),
    h("p", {}, "Answer it from a shell on this store: the command records the answer and resumes the run, and this page follows it."),
    h("pre", { class: "answer-command" }, waiting.answer_command),
  );
}

function timeoutText(wait) {
  if (wait.timeout_seconds == null) return "none: it waits until answered";
  return `${duration(wait.timeout_seconds)}, until ${localTime(wait.deadline)}; then ${afterTimeout(wait)}`;
}

/** What a resume does with a question past its timeout. */
function afterTimeout(wait) {
  return wait.has_default ? `a resume takes the default ${JSON.stringify(wait.default)}` : "a resume fails the run";
}

/** Every question the run asked (branchwork.wait), and what became of it. */
function questionsTable(waits) {
  if (!waits?.length) return null;
  return h("div", { class: "questions" }, h("h3", {}, "Questions"),
    h("table", { class: "grid compact" },
      h("thead", {}, h("tr", {}, ["Question", "Asked", "Answer"].map((c) => h("th", {}, c)))),
      h("tbody", {}, waits.map((wait) => h("tr", { "data-wait": wait.wait_id },
        h("td", {}, wait.question), h("td", {}, localTime(wait.asked)), h("td", { class: "mono" }, answerText(wait)))))));
}

function answerText(wait) {
  if (wait.state === "answered") return JSON.stringify(wait.answer) + (wait.answered_by === "default" ? " (its default, past the timeout)" : "");
  if (wait.state === "timed_out") return `timed out: ${afterTimeout(wait)}`;
  return "waiting for an answer";
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
