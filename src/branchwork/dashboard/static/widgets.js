// Small pieces every page uses: a pager for the API's paged lists, error boxes, sections.

import { h } from "./dom.js";
import { number } from "./format.js";

/** "‹ Prev · 51–100 of 10 000 · Next ›" for a paged API answer; onPage(n) loads page n. A page
 * past the end reads "page 99 of 2", and Prev goes to the last page. */
export function pager(answer, onPage) {
  const { page, page_size: size, total } = answer;
  const pages = Math.max(1, Math.ceil(total / size));
  const first = total ? (page - 1) * size + 1 : 0;
  const last = Math.min(total, page * size);
  const info = first > total ? `page ${number(page)} of ${number(pages)}` : `${number(first)}–${number(last)} of ${number(total)}`;
  const button = (label, target, enabled) =>
    h("button", { type: "button", class: "page-btn", disabled: !enabled, on: { click: () => onPage(target) } }, label);
  return h(
    "div",
    { class: "pager" },
    button("‹ Prev", Math.min(page - 1, pages), page > 1),
    h("span", { class: "page-info" }, info),
    button("Next ›", page + 1, page < pages),
  );
}

export function errorBox(error) {
  return h("div", { class: "error-box", role: "alert" }, String(error?.message ?? error));
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), children);
}

export function loading(what) {
  return h("div", { class: "muted loading" }, `Loading ${what}…`);
}
