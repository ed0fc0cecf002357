// The console's one page: which view to draw comes from the path.

import { renderDlq } from "./dlq.js";
import { renderEntry } from "./entry.js";
import { renderLive } from "./live.js";
import { findPath, renderSearch } from "./search.js";
import { renderStuck } from "./stuck.js";
import { renderTimeline } from "./timeline.js";

function decoded(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function route(view) {
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  let m;
  if (path === "/") return ["orders", () => renderSearch(view, params)];
  if ((m = path.match(/^\/orders\/([^/]+)$/))) return ["orders", () => renderTimeline(view, decoded(m[1]))];
  if (path === "/stuck") return ["stuck", () => renderStuck(view, params)];
  if (path === "/dlq") return ["dlq", () => renderDlq(view, params)];
  if ((m = path.match(/^\/dlq\/([^/]+)$/))) return ["dlq", () => renderEntry(view, decoded(m[1]))];
  if (path === "/live") return ["live", () => renderLive(view)];
  return [null, () => view.replaceChildren(document.createTextNode("No such page."))];
}

document.getElementById("find").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = document.getElementById("find-q").value.trim();
  if (q) location.assign(findPath(q));
});

const view = document.getElementById("view");
const [nav, draw] = route(view);
for (const a of document.querySelectorAll("nav a")) {
  if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
}
draw();
