// Every element the console shows is made here. Values from the API (which carry what
// events from outside said) only ever become text nodes or attribute values set through
// the DOM: nothing is parsed as markup, so nothing needs escaping by hand.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "href") node.setAttribute("href", ownPath(value));
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Links only ever go to the console's own pages: a path, never a scheme such as
// javascript: (ids in paths are encoded by the callers with encodeURIComponent).
function ownPath(path) {
  const text = String(path);
  if (!text.startsWith("/") || text.startsWith("//")) {
    throw new Error(`not a console path: ${text}`);
  }
  return text;
}

export function link(path, ...children) {
  return el("a", { href: path }, ...children);
}

export function orderPath(orderId) {
  return `/orders/${encodeURIComponent(orderId)}`;
}

export function entryPath(entryId) {
  return `/dlq/${encodeURIComponent(entryId)}`;
}

export function table(headings, rows, props = {}) {
  return el(
    "table",
    props,
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows),
  );
}

export function badge(status) {
  return el("span", { class: `badge status-${String(status).toLowerCase()}` }, status);
}

export function section(title, ...children) {
  return el("section", {}, el("h2", {}, title), ...children);
}

export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}
