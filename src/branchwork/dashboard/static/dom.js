// Building DOM without ever parsing markup: every value from the store becomes a text node or
// an attribute set with setAttribute, so a step that prints <script> shows text and runs
// nothing. No innerHTML anywhere in the dashboard.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

function setProps(element, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    } else if (name === "style") {
      // CSSOM, not a style attribute: the page's Content-Security-Policy forbids inline styles.
      for (const [property, css] of Object.entries(value)) element.style.setProperty(property, css);
    } else if (name === "href") {
      element.setAttribute("href", safeHref(value));
    } else if (name.startsWith("on")) {
      throw new Error(`event handlers go in {on: {...}}, not as the attribute ${name}`);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

// Only the dashboard's own hash routes are links; nothing from the store becomes a URL scheme.
function safeHref(value) {
  const href = String(value);
  if (!href.startsWith("#/")) throw new Error(`not a dashboard link: ${href}`);
  return href;
}

/** h("td", {class: "num"}, "text", child, [more]) -> an HTML element. */
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  setProps(element, props);
  return append(element, children);
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  setProps(element, props);
  return append(element, children);
}

export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A link to a dashboard page: `link(["runs", name], "text")` -> <a href="#/runs/name">. */
export function link(parts, text, props = {}) {
  return h("a", { ...props, href: route(parts) }, text);
}

export function route(parts, query) {
  const path = "#/" + parts.map((part) => encodeURIComponent(part)).join("/");
  const search = query ? new URLSearchParams(clean(query)).toString() : "";
  return search ? `${path}?${search}` : path;
}

function clean(query) {
  return Object.fromEntries(Object.entries(query).filter(([, v]) => v !== "" && v != null));
}

/** A small key/value table: rows of [label, value-or-node]. */
export function fields(rows) {
  return h(
    "dl",
    { class: "fields" },
    rows.filter(([, value]) => value !== undefined).map(([label, value]) => [
      h("dt", {}, label),
      h("dd", {}, value ?? "-"),
    ]),
  );
}
