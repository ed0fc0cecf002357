// "/dlq": the dead letters of the four services, with show and redrive.

import { getJSON } from "./api.js";
import { el, entryPath, link, orderPath, replace, table } from "./dom.js";
import { dateTime } from "./format.js";
import { poll } from "./poll.js";
import { redriveButton } from "./redrive.js";

function row(e, refresh) {
  return el(
    "tr",
    { class: `parked-${e.state}`, dataset: { entryId: e.id, state: e.state } },
    el("td", { class: "mono" }, link(entryPath(e.id), e.id)),
    el("td", { class: "mono" }, e.order_id ? link(orderPath(e.order_id), e.order_id) : "–"),
    el("td", {}, e.event_type || el("span", { class: "tag" }, "poison")),
    el("td", { class: "error-text" },
      el("span", { class: "tag" }, e.state === "dead" ? e.error_kind : `${e.state}, ${e.error_kind}`),
      e.error || "",
    ),
    el("td", { class: "num" }, String(e.attempts), e.redriven_count ? el("div", { class: "muted" }, `redriven ${e.redriven_count}×`) : null),
    el("td", { class: "nowrap" }, dateTime(e.last_failed_at)),
    el("td", {},
      el("div", { class: "row-actions" },
        link(entryPath(e.id), "Show"),
        e.state === "dead" ? redriveButton(e, refresh) : null,
      ),
    ),
  );
}

const SERVICES = ["order", "inventory", "payment", "fulfillment"];

function listPath(service, all) {
  const query = new URLSearchParams();
  if (service) query.set("service", service);
  if (all) query.set("all", "1");
  const text = query.toString();
  return text ? `?${text}` : "";
}

export function renderDlq(view, params) {
  const all = params.get("all") === "1";
  const service = SERVICES.includes(params.get("service")) ? params.get("service") : "";
  const toggle = el("input", { type: "checkbox", id: "include-retrying", checked: all });
  const pick = el(
    "select",
    { id: "dlq-service" },
    el("option", { value: "", selected: service === "" }, "every service"),
    SERVICES.map((s) => el("option", { value: s, selected: s === service }, s)),
  );
  const go = () => location.assign(`/dlq${listPath(pick.value, toggle.checked)}`);
  toggle.addEventListener("change", go);
  pick.addEventListener("change", go);
  const body = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  replace(
    view,
    el("div", { class: "title-row" },
      el("h1", {}, "Dead letters"),
      el("label", { class: "control" }, "of ", pick),
      el("label", {}, toggle, " also those still being retried"),
    ),
    el("p", { class: "muted" },
      "Messages that ran out of retries (or could not be read). Fix the cause, then redrive: the entry gets a fresh retry budget, and later messages of its order held behind it follow in order.",
    ),
    body,
  );
  let poller = null;
  const refresh = async () => {
    try {
      const found = await getJSON(`/api/dlq${listPath(service, all)}`);
      const problems = Object.entries(found.errors).map(([service, message]) =>
        el("p", { class: "error" }, `${service}: ${message}`),
      );
      const again = () => poller && poller.now();
      const entries = found.entries.length
        ? table(
            ["Entry", "Order", "Event", "Error", "Attempts", "Last failed", ""],
            found.entries.map((e) => row(e, again)),
            { class: "grid", dataset: { testid: "dlq" } },
          )
        : el("p", { class: "muted", dataset: { testid: "dlq-empty" } }, "No dead letter. Nothing waits for an operator.");
      replace(body, problems, el("p", { class: "muted" }, `${found.entries.length} entr${found.entries.length === 1 ? "y" : "ies"}`), entries);
    } catch (err) {
      replace(body, el("p", { class: "error" }, err.message));
    }
  };
  poller = poll(refresh, 2000);
}
