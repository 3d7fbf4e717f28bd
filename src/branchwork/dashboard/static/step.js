// The step page: one invocation of a run — its arguments, its inputs and outputs with their
// stored previews and lineage across runs (artifacts.js), metadata, the cache verdict, every
// attempt with its error and traceback, and its logs fetched a page at a time. While the run
// can change, the page follows it as the run page does (live.js): the header is redrawn at
// each change of the run (a running step's duration grows), the rest when the step changed.

import { getJSON, path } from "./api.js";
import { inputsSection, outputsSection } from "./artifacts.js";
import { fields, h, link, replace } from "./dom.js";
import { clip, cssToken, duration, elapsed, FINISHED, localTime, number, statusBadge } from "./format.js";
import { follow } from "./live.js";
import { errorBox, loading, section } from "./widgets.js";

const LOG_PAGE = 65536; // characters per request

export function renderStep(root, { run, invocation, query }) {
  let closed = false;
  let stopLive = null;
  let drawn = null; // the step's answer as last drawn, less its changes token
  const top = h("div");
  const body = h("div");
  const load = async () => {
    const answer = await getJSON(path("runs", run, "steps", invocation));
    return { ...(answer.step || {}), ...withoutKey(answer, "step") };
  };
  const show = (step) => {
    replace(top, header(run, step));
    const data = JSON.stringify(withoutKey(step, "changes"));
    if (data === drawn) return;
    drawn = data;
    replace(body, argumentsSection(step.config),
      inputsSection(run, invocation, step.inputs, step.inputs_total), outputsSection(step.outputs),
      metadataSection(step), attemptsSection(step), logsSection(run, invocation, step.attempts || []),
      configSection(step.config));
  };
  const changed = async () => {
    const step = await load();
    if (!closed) show(step);
  };
  const ended = ({ deleted }) => {
    if (deleted && !closed) replace(body, errorBox("This run was deleted."));
  };

  replace(root, loading("the step"));
  load()
    .then((step) => {
      if (closed) return;
      replace(root, breadcrumb(run, invocation), top, body);
      show(step);
      if (query.get("show") === "traceback") showTraceback(root);
      if (step.changes.live) stopLive = follow(run, step.changes.token, { changed, ended });
    })
    .catch((error) => {
      if (!closed) replace(root, breadcrumb(run, invocation), errorBox(error));
    });
  return () => {
    closed = true;
    if (stopLive) stopLive();
  };
}

function withoutKey(object, key) {
  const { [key]: _, ...rest } = object;
  return rest;
}

function breadcrumb(run, invocation) {
  return h("nav", { class: "crumbs" }, link(["runs"], "Runs"), " / ", link(["runs", run], run), " / ", h("span", {}, invocation));
}

function header(run, step) {
  const seconds = step.duration_seconds ?? elapsed(step.start_time, step.end_time);
  return h("div", { class: "step-header" },
    h("h1", {}, step.invocation_id ?? step.name, " ", statusBadge(step.status)),
    fields([
      ["Step", step.step ?? step.step_name],
      ["Run", link(["runs", run], run)],
      ["Attempt", step.attempt ?? "-"],
      ["Started", localTime(step.start_time)],
      ["Ended", localTime(step.end_time)],
      ["Duration", duration(seconds)],
      ["Cache", cacheVerdict(step)],
      ["Cached from", step.cached_from_run ? link(["runs", step.cached_from_run], step.cached_from_run) : undefined],
    ]),
    step.exception_type || step.exception_message
      ? h("pre", { class: "error-line" }, [step.exception_type, step.exception_message].filter(Boolean).join(": "))
      : null,
  );
}

function cacheVerdict(step) {
  if (!step.cache_verdict) return "-";
  return h("span", {}, h("span", { class: `badge cache-${cssToken(step.cache_verdict)}` }, step.cache_verdict), step.cache_reason ? ` ${step.cache_reason}` : "");
}

/** What the step was called with, as recorded ({"$ref": invocation} marks another step's
 * output: those are the inputs below). */
function argumentsSection(config) {
  const values = Object.entries(config?.inputs || {});
  if (!values.length) return null;
  return section("Arguments", fields(values.map(([name, value]) => [name, h("span", { class: "mono", title: clip(show(value), 2000) }, clip(show(value), 300))])));
}

function metadataSection(step) {
  const values = step.metadata ?? step.run_metadata ?? {};
  const entries = Object.entries(values);
  return section("Metadata", entries.length ? fields(entries.map(([k, v]) => [k, show(v)])) : h("p", { class: "muted" }, "No metadata."));
}

function attemptsSection(step) {
  const attempts = step.attempts || [];
  if (!attempts.length) return section("Attempts", h("p", { class: "muted" }, "No attempts recorded."));
  const element = section("Attempts", attempts.map((attempt) => h("div", { class: `attempt st-${cssToken(attempt.status)}`, "data-attempt": attempt.attempt },
    h("h3", {}, `Attempt ${attempt.attempt} `, statusBadge(attempt.status), h("span", { class: "muted" }, ` ${localTime(attempt.start)} · ${duration(elapsed(attempt.start, attempt.end))}`)),
    attempt.exception_type || attempt.exception_message
      ? h("pre", { class: "error-line" }, [attempt.exception_type, attempt.exception_message].filter(Boolean).join(": "))
      : null,
    attempt.traceback ? h("details", { class: "traceback" }, h("summary", {}, "Traceback"), h("pre", {}, attempt.traceback)) : null,
  )));
  element.id = "attempts";
  return element;
}

function showTraceback(root) {
  const all = root.querySelectorAll("details.traceback");
  const last = all[all.length - 1];
  if (!last) return;
  last.open = true;
  last.scrollIntoView({ block: "start" });
}

/** The logs of one attempt (the latest first), a page at a time; one button per attempt. */
function logsSection(run, invocation, attempts) {
  const text = h("pre", { class: "logs" });
  const status = h("div", { class: "log-status muted" });
  let onScreen = null; // the attempt shown: a late answer for another one is dropped
  const choose = (attempt) => {
    onScreen = attempt;
    for (const button of picker.querySelectorAll("button")) button.disabled = button.dataset.attempt === String(attempt);
    text.replaceChildren();
    replace(status, loading("logs"));
    more(attempt, 0);
  };
  const picker = h("div", { class: "attempt-picker" }, attempts.length > 1
    ? attempts.map((a) => h("button", { type: "button", "data-attempt": a.attempt, on: { click: () => choose(a.attempt) } }, `Attempt ${a.attempt}`))
    : null);
  const element = section("Logs", picker, status, text);
  element.id = "logs";
  const more = async (attempt, offset) => {
    try {
      const page = await getJSON(`${path("runs", run, "steps", invocation)}/logs`, { offset, limit: LOG_PAGE, attempt });
      if (attempt !== onScreen) return;
      text.append(page.text);
      const loaded = page.next_offset ?? page.total;
      if (!page.total) return replace(status, noLogs(attempts.find((a) => a.attempt === attempt)));
      const button = page.next_offset != null
        ? h("button", { type: "button", class: "more-logs", on: { click: () => more(attempt, page.next_offset) } }, "Load more")
        : null;
      replace(status, `${number(loaded)} of ${number(page.total)} characters `, button);
    } catch (error) {
      replace(status, errorBox(error));
    }
  };
  choose(attempts.length ? attempts[attempts.length - 1].attempt : "");
  return element;
}

// An attempt's logs are stored when it ends.
function noLogs(attempt) {
  return attempt && !FINISHED.has(attempt.status) ? "No logs yet: they are stored when the attempt ends." : "No logs.";
}

function configSection(config) {
  if (!config || !Object.keys(config).length) return null;
  return section("Configuration", h("details", {}, h("summary", {}, "Step configuration"), h("pre", { class: "mono" }, JSON.stringify(config, null, 2))));
}

function show(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}
