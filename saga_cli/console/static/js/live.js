// "/live": throughput, latency and backlog, sampled every second.

import { getJSON } from "./api.js";
import { el, link, replace, section, table } from "./dom.js";
import { count, ms, rate, seconds } from "./format.js";
import { bars, line } from "./chart.js";
import { poll } from "./poll.js";

const HISTORY = 120; // in-flight samples kept by the page (two minutes)

function tile(testid, label, value, note, kind = "") {
  return el("div", { class: `tile ${kind}` },
    el("div", { class: "tile-label" }, label),
    el("div", { class: "tile-value", dataset: { testid } }, value),
    el("div", { class: "tile-note" }, note),
  );
}

export function renderLive(view) {
  const tiles = el("div", { class: "tiles" });
  const throughput = el("canvas", { class: "chart", "aria-label": "sagas ended per second" });
  const inFlight = el("canvas", { class: "chart", "aria-label": "sagas in flight" });
  const services = el("div", {});
  const stamp = el("span", { class: "live-dot on" }, "live, every second");
  replace(
    view,
    el("div", { class: "title-row" }, el("h1", {}, "Live"), stamp),
    tiles,
    el("div", { class: "charts" },
      section("Sagas ended per second", throughput),
      section("Sagas in flight", inFlight),
    ),
    section("Backlog by service", services),
  );
  const history = [];
  poll(async () => {
    try {
      const s = await getJSON("/api/live");
      history.push(s.in_flight);
      if (history.length > HISTORY) history.shift();
      const window = `last ${s.window_s} s`;
      replace(
        tiles,
        tile("live-rate", "Throughput", `${rate(s.sagas_per_s)}/s`, `sagas ended, ${window}`),
        tile("live-ended", "Ended", count(s.ended), `${count(s.completed)} completed, ${count(s.cancelled)} cancelled`),
        tile("live-p50", "Latency p50", ms(s.latency_ms.p50), `placed to end, ${window}`),
        tile("live-p99", "Latency p99", ms(s.latency_ms.p99), `placed to end, ${window}`),
        tile("live-in-flight", "In flight", count(s.in_flight), "sagas not yet ended"),
        tile("live-retrying", "Retrying", count(s.retrying), "messages parked for a retry", s.retrying ? "warn" : ""),
        tile("live-dead", "Dead letters", count(s.dead_letters), el("span", {}, link("/dlq", "waiting for a redrive")), s.dead_letters ? "bad" : ""),
        tile("live-outbox", "Outbox", count(s.outbox_unsent), "events not yet published"),
      );
      bars(throughput, s.per_second, { label: "per second", leftText: `-${s.window_s} s`, rightText: "now" });
      line(inFlight, history, { label: "in flight", leftText: `${history.length} samples`, rightText: "now" });
      const rows = Object.entries(s.services).map(([name, b]) =>
        el("tr", { dataset: { service: name } },
          el("td", {}, name),
          el("td", { class: "num" }, count(b.retrying)),
          el("td", { class: "num" }, count(b.dead)),
          el("td", { class: "num" }, count(b.outbox_unsent)),
          el("td", { class: "num" }, b.outbox_unsent ? seconds(b.outbox_oldest_s) : "–"),
        ),
      );
      replace(
        services,
        table(["Service", "Retrying", "Dead", "Outbox unsent", "Oldest unsent"], rows, { class: "grid narrow" }),
        s.unreachable.length ? el("p", { class: "error" }, `Not answering: ${s.unreachable.join(", ")}`) : null,
      );
      stamp.className = "live-dot on";
      stamp.textContent = "live, every second";
    } catch (err) {
      stamp.className = "live-dot off";
      stamp.textContent = `not updating: ${err.message}`;
    }
  }, 1000);
}
