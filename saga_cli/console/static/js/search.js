// "/": a customer's orders (?customer=...); an order id goes straight to its timeline.

import { getJSON } from "./api.js";
import { badge, el, link, orderPath, replace, section, table } from "./dom.js";
import { dateTime, money, ms } from "./format.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isOrderId(text) {
  return UUID.test(text);
}

export function findPath(query) {
  const q = query.trim();
  return isOrderId(q) ? orderPath(q.toLowerCase()) : `/?customer=${encodeURIComponent(q)}`;
}

function help() {
  return section(
    "Find an order",
    el("p", {}, "Type an order id to see its timeline, or a customer id to list their orders (newest first, running or archived)."),
    el("ul", { class: "plain" },
      el("li", {}, link("/stuck", "Stuck sagas"), ": sagas without progress, and what each waits for"),
      el("li", {}, link("/dlq", "Dead letters"), ": messages that ran out of retries, to show and redrive"),
      el("li", {}, link("/live", "Live"), ": throughput, latency and backlog, every second"),
    ),
  );
}

function row(o) {
  return el(
    "tr",
    { dataset: { orderId: o.order_id } },
    el("td", { class: "mono" }, link(orderPath(o.order_id), o.order_id)),
    el("td", {}, badge(o.status)),
    el("td", {}, o.cancel_reason || ""),
    el("td", { class: "num" }, money(o.total_minor, o.currency)),
    el("td", {}, dateTime(o.created_at)),
    el("td", { class: "num" }, ms(o.duration_ms)),
    el("td", {}, o.archived ? "archived" : ""),
  );
}

export async function renderSearch(view, params) {
  const customer = (params.get("customer") || "").trim();
  if (!customer) {
    replace(view, help());
    return;
  }
  document.getElementById("find-q").value = customer;
  replace(view, el("p", { class: "muted" }, "Searching…"));
  try {
    const found = await getJSON(`/api/orders?customer=${encodeURIComponent(customer)}`);
    const title = el("h1", {}, "Orders of customer ", el("q", { dataset: { testid: "customer" } }, found.customer_id));
    if (found.orders.length === 0) {
      replace(view, title, el("p", { class: "muted" }, "No order of this customer."));
      return;
    }
    replace(
      view,
      title,
      el("p", { class: "muted" }, `${found.orders.length} order(s), newest first`),
      table(["Order", "Status", "Cancel reason", "Total", "Placed", "Took", ""], found.orders.map(row), {
        class: "grid",
        dataset: { testid: "search-results" },
      }),
    );
  } catch (err) {
    replace(view, el("p", { class: "error" }, `Search failed: ${err.message}`));
  }
}
