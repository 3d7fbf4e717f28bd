// Following a run as it goes, through the server-sent events of api/runs/<run>/events:
// `progress` carries {status, counts, steps} whenever something changed, `end` says the run
// is finished. The browser reconnects by itself after a dropped connection; after `end` the
// stream is closed for good.

import { apiUrl, path } from "./api.js";

/** follow(run, {progress(data), end(data)}) -> a function that stops following. */
export function follow(run, handlers) {
  const source = new EventSource(apiUrl(`${path("runs", run)}/events`), { withCredentials: true });
  const parse = (event) => {
    try {
      return JSON.parse(event.data || "{}");
    } catch {
      return {};
    }
  };
  source.addEventListener("progress", (event) => handlers.progress(parse(event)));
  source.addEventListener("end", (event) => {
    source.close();
    handlers.end(parse(event));
  });
  return () => source.close();
}
