// "/dlq/{id}": one parked message, with the original message as it was consumed.

import { getJSON } from "./api.js";
import { el, link, orderPath, replace, section, table } from "./dom.js";
import { dateTime } from "./format.js";
import { redriveButton } from "./redrive.js";

function prettyValue(message) {
  if (message.value === null) return "(no value)";
  if (message.value_encoding !== "json") return message.value;
  try {
    return JSON.stringify(JSON.parse(message.value), null, 2);
  } catch {
    return message.value;
  }
}

function describe(e) {
  const pairs = [
    ["State", e.state],
    ["Order", e.order_id ? link(orderPath(e.order_id), e.order_id) : "–"],
    ["Event", e.event_type || "poison message (could not be read)"],
    ["Event id", e.event_id],
    ["Error kind", e.error_kind],
    ["Error", e.error || "–"],
    ["Attempts", String(e.attempts)],
    ["First failed", dateTime(e.first_failed_at)],
    ["Last failed", dateTime(e.last_failed_at)],
    ["Redriven", `${e.redriven_count} time(s)`],
    ["Holds back", e.blocks_order ? `${e.held_behind} later message(s) of the order` : "nothing"],
    ["Consumed from", `${e.source_topic} partition ${e.source_partition} offset ${e.source_offset}`],
    ["Copy on", e.dlq_topic],
    ["Parked at", dateTime(e.parked_at)],
  ];
  return el("dl", { class: "facts" }, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

export async function renderEntry(view, entryId) {
  replace(view, el("p", { class: "muted" }, "Loading…"));
  const title = el("h1", {}, "Dead letter ", el("span", { class: "mono" }, entryId));
  try {
    const e = await getJSON(`/api/dlq/${encodeURIComponent(entryId)}`);
    const m = e.message;
    replace(
      view,
      el("div", { class: "title-row" }, title, redriveButton(e), link(`/dlq/${encodeURIComponent(entryId)}`, "Reload")),
      describe(e),
      section(
        "Original message",
        el("dl", { class: "facts" },
          el("dt", {}, "Key"), el("dd", { class: "mono" }, m.key === null ? "(none)" : `${m.key}${m.key_encoding === "base64" ? " (base64)" : ""}`),
          el("dt", {}, "Value"), el("dd", {}, m.value_encoding === "base64" ? "not text: shown as base64" : m.value_encoding || "–"),
        ),
        m.headers.length
          ? table(["Header", "Value"], m.headers.map((h) => el("tr", {}, el("td", { class: "mono" }, h.key), el("td", { class: "mono" }, `${h.value}${h.encoding === "base64" ? " (base64)" : ""}`))), { class: "grid" })
          : null,
        el("pre", { class: "payload", dataset: { testid: "message-value" } }, prettyValue(m)),
      ),
    );
  } catch (err) {
    replace(view, title, el("p", { class: err.status === 404 ? "muted" : "error", dataset: { testid: "entry-missing" } }, err.message));
  }
}
