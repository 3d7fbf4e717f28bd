// Following a run as it goes, by short polls of api/runs/<run>/changes: each answers at once
// whether the run changed since the token of what the page shows. No page holds a connection
// open (a browser opens six per host: pages that each held a stream locked every other tab
// out); a hidden tab does not poll at all, and catches up as soon as it is shown again.

import { getJSON, path } from "./api.js";

const POLL_MS = 1000;
const RETRY_MS = 5000; // after a failed poll: the server restarting, the network down

/**
 * follow(run, token, {changed(), ended({deleted})}) -> a function that stops following.
 * `token` is the `changes.token` of what the page shows; `changed()` reads it again (awaited
 * before the next poll; if it fails, the change is taken again at the next try); `ended` is
 * called once the run no longer changes (it finished, or was deleted).
 */
export function follow(run, token, handlers) {
  let timer = null;
  let polling = false;
  let stopped = false;

  const later = (ms) => {
    if (!stopped && !document.hidden) timer = setTimeout(poll, ms);
  };
  const end = (how) => {
    stop();
    handlers.ended(how);
  };
  async function poll() {
    timer = null;
    polling = true;
    try {
      const answer = await getJSON(`${path("runs", run)}/changes`, { since: token });
      if (stopped) return;
      if (answer.changed) await handlers.changed();
      token = answer.token;
      if (answer.live) later(POLL_MS);
      else end({ deleted: false });
    } catch (error) {
      if (stopped) return;
      if (error.status === 404) end({ deleted: true });
      else later(RETRY_MS);
    } finally {
      polling = false;
    }
  }
  function onVisibility() {
    clearTimeout(timer);
    timer = null;
    if (!document.hidden && !polling) poll();
  }
  function stop() {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisibility);
  }

  document.addEventListener("visibilitychange", onVisibility);
  later(POLL_MS);
  return stop;
}
