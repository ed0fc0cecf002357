// "/stuck": sagas without progress for a while, what each waits for, and what holds it.

import { getJSON } from "./api.js";
import { badge, el, entryPath, link, orderPath, replace, table } from "./dom.js";
import { seconds } from "./format.js";
import { poll } from "./poll.js";

const CHOICES = ["0s", "5s", "30s", "1m", "5m", "1h"];

function blockers(s) {
  return s.blocked_on
    .filter((b) => b.state === "dead" || !b.queued_behind)
    .map((b) =>
      el("div", { class: `blocker parked-${b.state}` },
        link(entryPath(b.dlq_id), b.dlq_id),
        ` ${b.state === "dead" ? "dead" : `retrying (attempt ${b.attempts})`}: ${b.event_type || "poison message"}`,
        b.last_error ? el("span", { class: "error-text" }, ` — ${b.last_error}`) : null,
      ),
    );
}

function row(s) {
  return el(
    "tr",
    { dataset: { orderId: s.order_id } },
    el("td", { class: "mono" }, link(orderPath(s.order_id), s.order_id)),
    el("td", {}, badge(s.status), s.cancel_reason ? ` ${s.cancel_reason}` : ""),
    el("td", { class: "num" }, seconds(s.waiting_s)),
    el("td", {}, el("ul", { class: "plain" }, s.waiting_for.map((w) => el("li", {}, w)))),
    el("td", {}, blockers(s)),
  );
}

export function renderStuck(view, params) {
  const olderThan = CHOICES.includes(params.get("older_than")) ? params.get("older_than") : "30s";
  const select = el("select", { id: "older-than" }, CHOICES.map((c) => el("option", { value: c, selected: c === olderThan }, c)));
  select.addEventListener("change", () => {
    location.assign(`/stuck?older_than=${encodeURIComponent(select.value)}`);
  });
  const body = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  replace(
    view,
    el("div", { class: "title-row" },
      el("h1", {}, "Stuck sagas"),
      el("label", { class: "control" }, "without progress for at least ", select),
    ),
    body,
  );
  poll(async () => {
    try {
      const found = await getJSON(`/api/stuck?older_than=${encodeURIComponent(olderThan)}`);
      if (found.stuck.length === 0) {
        replace(body, el("p", { class: "muted", dataset: { testid: "no-stuck" } }, `No saga without progress for ${olderThan}.`));
      } else {
        replace(
          body,
          table(["Order", "Status", "Waiting", "Waiting for", "Held by"], found.stuck.map(row), {
            class: "grid",
            dataset: { testid: "stuck" },
          }),
        );
      }
    } catch (err) {
      replace(body, el("p", { class: "error" }, err.message));
    }
  }, 3000);
}
