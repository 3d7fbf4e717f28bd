// Inputs and outputs on the step page: one row per artifact with its type, the step run that
// produced it or the ones that consumed it (in any run), and the preview its materializer
// stored when it saved the value (text, metadata, a PNG thumbnail). Never the artifact itself.
// Inputs and consumers are paged by the server; the page asks for more as the user does.

import { getJSON, path } from "./api.js";
import { fields, h, link, replace } from "./dom.js";
import { number } from "./format.js";
import { errorBox, pager, section } from "./widgets.js";

const INPUTS_PAGE = 50; // the server sends this many with the step
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function inputsSection(run, invocation, items, total) {
  const body = h("div");
  const show = (answer) => replace(body, artifactTable(answer.items, producerCell),
    answer.total > answer.page_size ? pager(answer, load) : null);
  const load = async (page) => {
    try {
      show(await getJSON(`${path("runs", run, "steps", invocation)}/inputs`, { page, page_size: INPUTS_PAGE }));
    } catch (error) {
      replace(body, errorBox(error));
    }
  };
  show({ items: items || [], page: 1, page_size: INPUTS_PAGE, total: total ?? (items || []).length });
  return section("Inputs", body);
}

export function outputsSection(outputs) {
  return section("Outputs", artifactTable(outputs || [], consumersCell));
}

function artifactTable(entries, lineageCell) {
  if (!entries.length) return h("p", { class: "muted" }, "None.");
  return h("table", { class: "grid artifacts" },
    h("thead", {}, h("tr", {}, ["Name", "Artifact", "Lineage", "Preview"].map((c) => h("th", {}, c)))),
    h("tbody", {}, entries.map((entry) => h("tr", { "data-name": entry.name },
      h("td", { class: "mono" }, entry.name),
      h("td", {}, artifactCell(entry.artifact)),
      h("td", {}, lineageCell(entry)),
      h("td", { class: "preview-cell" }, preview(entry.artifact?.preview))))));
}

function artifactCell(artifact) {
  if (!artifact) return h("span", { class: "muted" }, "not stored");
  const version = artifact.version != null ? ` v${artifact.version}` : "";
  return [
    h("div", {}, `${artifact.artifact ?? artifact.id}${version}`),
    h("div", { class: "muted" }, artifact.data_type ?? ""),
    h("details", { class: "artifact-details" }, h("summary", {}, "details"), fields([
      ["Materializer", artifact.materializer ?? "-"],
      ["URI", h("span", { class: "mono" }, artifact.uri ?? "-")],
      ["Content hash", artifact.content_hash ? h("span", { class: "mono" }, artifact.content_hash) : undefined],
      ["Version id", h("span", { class: "mono" }, artifact.id)],
    ])),
  ];
}

function stepLink(ref) {
  return link(["runs", ref.run, "steps", ref.invocation], `${ref.run} / ${ref.invocation}`, { class: "lineage" });
}

function producerCell(entry) {
  return entry.producer
    ? h("span", {}, "from ", stepLink(entry.producer))
    : h("span", { class: "muted" }, "not made by a step");
}

/** The first consumers the server sent, and a button that fetches the next page. */
function consumersCell(entry) {
  const first = entry.consumers || { items: [], page: 1, page_size: 0, total: 0 };
  if (!first.total) return h("span", { class: "muted" }, "not used yet");
  const list = h("ul", { class: "consumers" });
  const more = h("div");
  const add = (answer) => {
    list.append(...answer.items.map((ref) => h("li", {}, stepLink(ref))));
    const left = answer.total - (answer.page - 1) * answer.page_size - answer.items.length;
    replace(more, left > 0 ? h("button", { type: "button", class: "more-consumers", on: { click: () => next(answer) } }, `${number(left)} more`) : null);
  };
  const next = async (answer) => {
    try {
      add(await getJSON(`${path("artifacts", entry.artifact.id)}/consumers`, { page: answer.page + 1, page_size: answer.page_size }));
    } catch (error) {
      replace(more, errorBox(error));
    }
  };
  add(first);
  return h("div", {}, "used by", list, more);
}

function preview(value) {
  if (!value) return h("span", { class: "muted" }, "no preview");
  const image = typeof value.image_png === "string" && BASE64.test(value.image_png)
    ? h("img", { class: "thumb", alt: "preview", src: `data:image/png;base64,${value.image_png}` })
    : null;
  const meta = value.metadata && Object.keys(value.metadata).length
    ? fields(Object.entries(value.metadata).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]))
    : null;
  return [value.text ? h("pre", { class: "preview-text" }, value.text) : null, meta, image];
}
