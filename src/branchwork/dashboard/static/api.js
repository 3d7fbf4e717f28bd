// The JSON API under api/ (relative, so the dashboard also works behind a path prefix).
// Authentication rides on the HttpOnly cookie the server set on the first page load; actions
// carry the X-Branchwork-Action header that a cross-site form cannot send.

export const PAGE_SIZE = 50;

export function apiUrl(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== "" && value !== null && value !== undefined) params.set(name, String(value));
  }
  const search = params.toString();
  return `api/${path}${search ? "?" + search : ""}`;
}

/** The server's one-line `detail` as an Error (the status line when there is none), with the
 * HTTP status as its `status`. */
async function errorOf(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (typeof body.detail === "string") detail = body.detail;
  } catch {
    // not JSON: keep the status line
  }
  return Object.assign(new Error(detail), { status: response.status });
}

export async function getJSON(path, query) {
  const response = await fetch(apiUrl(path, query), {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export async function postAction(path) {
  const response = await fetch(apiUrl(path), {
    method: "POST",
    headers: { Accept: "application/json", "X-Branchwork-Action": "1" },
    credentials: "same-origin",
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** "runs/<run>/steps/<invocation>" with every part encoded. */
export function path(...parts) {
  return parts.map((part) => encodeURIComponent(part)).join("/");
}
