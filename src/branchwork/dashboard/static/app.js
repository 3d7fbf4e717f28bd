// The dashboard: a single page with hash routes, built from plain ES modules (no framework,
// no build step, nothing fetched from the network). Each page renders into <main> and returns
// a function that stops what it started (timers, following the run).
//   #/runs?pipeline=&status=&time=&q=&page=   the runs list
//   #/runs/<run>                              a run
//   #/runs/<run>/steps/<invocation>           one step run

import { getJSON } from "./api.js";
import { h, replace } from "./dom.js";
import { renderRun } from "./run.js";
import { renderRuns } from "./runs.js";
import { renderStep } from "./step.js";

const main = document.getElementById("main");
let cleanup = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [pathPart, search = ""] = raw.split("?", 2);
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(search) };
}

function pageFor(parts) {
  if (parts.length === 0 || (parts.length === 1 && parts[0] === "runs")) return [renderRuns, {}];
  if (parts[0] === "runs" && parts.length === 2) return [renderRun, { run: parts[1] }];
  if (parts[0] === "runs" && parts.length === 4 && parts[2] === "steps") {
    return [renderStep, { run: parts[1], invocation: parts[3] }];
  }
  return [null, {}];
}

function show() {
  problem.hidden = true;
  if (cleanup) cleanup();
  cleanup = null;
  const { parts, query } = parseHash();
  const [render, params] = pageFor(parts);
  window.scrollTo(0, 0);
  if (!render) {
    replace(main, h("h1", {}, "Not found"), h("p", {}, "No dashboard page at this address. "), h("a", { href: "#/runs" }, "All runs"));
    return;
  }
  cleanup = render(main, { ...params, query }) || null;
}

// A token given in the address was exchanged for a cookie by the server: drop it from the
// address bar and the history.
if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", location.pathname + location.hash);
}
/** The version and the store it reads (its password masked by the server), in the top bar. */
async function showStore() {
  try {
    const info = await getJSON("info");
    replace(document.getElementById("store"), `branchwork ${info.version} · ${info.store}`);
  } catch {
    // the pages work without it
  }
}

// A request made in the background (a timeline page scrolled into view, a group opened) that
// failed — the server stopped, the network dropped — is said in one line above the page
// rather than lost; the next successful page load clears it.
const problem = document.getElementById("problem");
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  const reason = event.reason instanceof Error ? event.reason.message : String(event.reason);
  replace(problem, `A request to the server failed: ${reason}. Reload the page to try again.`);
  problem.hidden = false;
});

window.addEventListener("hashchange", show);
show();
showStore();
