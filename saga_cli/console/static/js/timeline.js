// "/orders/{id}": one order's story, updated every second while the saga runs.

import { getJSON } from "./api.js";
import { badge, el, entryPath, link, replace, section, table } from "./dom.js";
import { clock, dateTime, money, ms, seconds } from "./format.js";
import { poll } from "./poll.js";
import { redriveButton } from "./redrive.js";

const TERMINAL = new Set(["COMPLETED", "CANCELLED"]);

function currency(t) {
  const placed = t.events.find((e) => e.event_type === "OrderPlaced");
  return placed && placed.payload ? placed.payload.currency : "";
}

function facts(t) {
  const pairs = [
    ["Customer", t.customer_id],
    ["Total", money(t.total_minor, currency(t))],
    ["Placed", dateTime(t.created_at)],
    ["Ended", t.terminal_at ? dateTime(t.terminal_at) : "not yet"],
    ["Placed to end", t.duration_ms !== null ? ms(t.duration_ms) : "–"],
    ["Trace id", t.trace_id || "–"],
  ];
  if (t.archived_at) pairs.push(["Archived", dateTime(t.archived_at)]);
  return el(
    "dl",
    { class: "facts" },
    pairs.map(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { fact: k.toLowerCase() } }, v ?? "–")]),
  );
}

function eventRow(e, index, open) {
  const payload = el("details", { open: open.has(e.event_id) || undefined, dataset: { eventId: e.event_id } },
    el("summary", {}, e.facts || "payload"),
    el("pre", { class: "payload" }, JSON.stringify(e.payload, null, 2)),
  );
  payload.addEventListener("toggle", () => {
    if (payload.open) open.add(e.event_id);
    else open.delete(e.event_id);
  });
  return el(
    "tr",
    {
      class: e.compensation ? "compensation" : "",
      dataset: { eventType: e.event_type, producer: e.producer, compensation: String(e.compensation) },
    },
    el("td", { class: "num muted" }, String(index + 1)),
    el("td", { class: "mono", title: e.occurred_at }, clock(e.occurred_at)),
    el("td", { class: "num" }, e.since_previous_ms === null ? "" : `+${ms(e.since_previous_ms)}`),
    el("td", { class: "num muted" }, ms(e.since_start_ms)),
    el("td", { class: "producer" }, e.producer),
    el("td", { class: "event" },
      e.compensation ? el("span", { class: "tag compensation-tag", title: "compensation" }, "↩ compensation") : null,
      el("span", { class: "event-type" }, e.event_type),
    ),
    el("td", { class: "facts-cell" }, payload),
  );
}

function parkedRow(b, refresh) {
  let state = b.state;
  if (b.state === "retrying" && b.queued_behind && !b.last_error) state = `held behind ${b.queued_behind}`;
  else if (b.state === "retrying") state = `retrying, next at ${clock(b.next_attempt_at)}`;
  return el(
    "tr",
    { class: `parked-${b.state}`, dataset: { entryId: b.dlq_id, state: b.state } },
    el("td", { class: "mono" }, link(entryPath(b.dlq_id), b.dlq_id)),
    el("td", {}, b.event_type || "poison message"),
    el("td", {}, state),
    el("td", { class: "num" }, String(b.attempts)),
    el("td", { class: "error-text" }, b.last_error || ""),
    el("td", {}, b.state === "dead" ? redriveButton({ ...b, id: b.dlq_id }, refresh) : null),
  );
}

function waiting(t) {
  if (TERMINAL.has(t.status)) return null;
  return section(
    `Waiting ${seconds(t.waiting_s)} for`,
    el("ul", { class: "waiting", dataset: { testid: "waiting-for" } }, t.waiting_for.map((w) => el("li", {}, w))),
  );
}

function parked(title, note, entries, refresh, testid) {
  if (entries.length === 0) return null;
  return section(
    title,
    note ? el("p", { class: "muted" }, note) : null,
    table(["Entry", "Event", "State", "Attempts", "Error", ""], entries.map((b) => parkedRow(b, refresh)), {
      class: "grid",
      dataset: { testid },
    }),
  );
}

function render(view, t, open, refresh) {
  const live = !TERMINAL.has(t.status);
  const blockedNote = TERMINAL.has(t.status)
    ? "The order has ended, but messages of it are still parked downstream."
    : "Fix the cause (bring the gateway back, deploy the fix), then redrive the dead entry.";
  replace(
    view,
    el("div", { class: "title-row" },
      el("h1", {}, "Order ", el("span", { class: "mono" }, t.order_id)),
      el("span", { dataset: { testid: "order-status" } }, badge(t.status)),
      t.cancel_reason ? el("span", { class: "reason", dataset: { testid: "cancel-reason" } }, t.cancel_reason) : null,
      el("span", { class: live ? "live-dot on" : "live-dot" }, live ? "live, updating every second" : "ended"),
    ),
    facts(t),
    waiting(t),
    parked("Parked messages", blockedNote, t.blocked_on, refresh, "blocked-on"),
    parked(
      "Conflicting events set aside",
      "They contradicted the saga record (the first fact stands) and hold nothing back; redrive once their producer is checked.",
      t.conflicts || [],
      refresh,
      "conflicts",
    ),
    section(
      `Events (${t.events.length}, ${t.compensations.length} compensation${t.compensations.length === 1 ? "" : "s"})`,
      table(
        ["#", "Time (UTC)", "Since previous", "Since start", "Producer", "Event", "Key facts (click for the payload)"],
        t.events.map((e, i) => eventRow(e, i, open)),
        { class: "grid timeline", dataset: { testid: "timeline" } },
      ),
    ),
  );
}

export function renderTimeline(view, orderId) {
  const open = new Set(); // payloads the operator opened stay open across refreshes
  let last = "";
  let poller = null;
  const refresh = async () => {
    try {
      const t = await getJSON(`/api/orders/${encodeURIComponent(orderId)}`);
      const text = JSON.stringify(t);
      if (text !== last) {
        last = text;
        render(view, t, open, () => poller && poller.now());
      }
      document.title = `${t.status} · order ${t.order_id.slice(0, 8)} · saga console`;
      // A running saga every second; an ended one now and then, for what is still parked.
      return TERMINAL.has(t.status) && t.blocked_on.length === 0 ? 5000 : 1000;
    } catch (err) {
      last = "";
      replace(view, el("h1", {}, "Order ", el("span", { class: "mono" }, orderId)), el("p", { class: "error" }, err.message));
      return err.status === 404 || err.status === 400 ? 5000 : 2000;
    }
  };
  poller = poll(refresh, 1000);
}
