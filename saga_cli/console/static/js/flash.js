// The one-line status region under the header: what an action did, or why it failed.

export function flash(text, kind = "info") {
  const region = document.getElementById("flash");
  region.textContent = text;
  region.className = `flash flash-${kind}`;
  region.hidden = false;
}

export function clearFlash() {
  const region = document.getElementById("flash");
  region.textContent = "";
  region.hidden = true;
}
