// Redriving one dead letter, from any view: ask first, then say what the server did.
// The server's redrive is idempotent: a second one reports that nothing is left to redrive.

import { postJSON } from "./api.js";
import { confirmAction } from "./confirm.js";
import { el } from "./dom.js";
import { flash } from "./flash.js";

export async function redrive(entry) {
  const what = entry.event_type ? `${entry.event_type}` : "a poison message";
  const order = entry.order_id ? ` of order ${entry.order_id}` : "";
  const sure = await confirmAction({
    title: `Redrive ${entry.id}?`,
    text:
      `${what}${order} goes back to the ${entry.service} service with a fresh retry budget. ` +
      "Fix the cause first (bring the gateway back, deploy the fix).",
    ok: "Redrive",
  });
  if (!sure) return null;
  try {
    const done = await postJSON(`/api/dlq/${encodeURIComponent(entry.id)}/redrive`);
    flash(done.message, done.outcome === "redriven" ? "ok" : "info");
    return done;
  } catch (err) {
    flash(`${entry.id}: redrive failed: ${err.message}`, "error");
    return null;
  }
}

export function redriveButton(entry, afterwards) {
  const button = el("button", { type: "button", class: "danger small", dataset: { redrive: entry.id } }, "Redrive");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const done = await redrive(entry);
      if (afterwards) await afterwards(done);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}
