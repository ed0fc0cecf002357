// How numbers and times read on the page.

export function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 120000) return `${(value / 1000).toFixed(value < 10000 ? 2 : 1)} s`;
  return `${(value / 60000).toFixed(1)} min`;
}

export function seconds(value) {
  return value === null || value === undefined ? "–" : ms(value * 1000);
}

// "2026-12-01T16:37:31.160776+00:00" -> "16:37:31.160" (the API's times are UTC).
export function clock(iso) {
  return iso ? iso.slice(11, 23) : "–";
}

export function dateTime(iso) {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC` : "–";
}

export function money(minor, currency) {
  if (minor === null || minor === undefined) return "–";
  return `${(minor / 100).toFixed(2)} ${currency || ""}`.trim();
}

export function count(value) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US");
}

export function rate(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(1);
}
